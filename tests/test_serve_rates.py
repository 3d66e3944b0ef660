"""Rates shared across processes through the store (stores/rates.py): the GCRA on both stores,
the per-address limit of unauthenticated requests across two servers, and the images-per-minute
limit held by two `mirror worker` processes together against the loopback OpenAI server, which
enforces the same limit and counts the 429s it answers."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from conftest import make_config_dir
from serve_support import auth_env, live, serve_settings

from mirror_cli.core import Mirror
from mirror_cli.models import Persona
from mirror_cli.settings import load_settings
from mirror_cli.stores.base import get_store
from mirror_cli.stores.rates import gcra, ip_bucket
from mirror_cli.worker import job_message

API = "/api/v1"
MODEL = "gpt-image-2"


def test_gcra_spaces_starts_and_allows_a_burst():
    tat = None
    taken = []
    for _ in range(3):  # a burst of 3 at t=100
        answer, tat = gcra(tat, 100.0, 2.0, 3, 0.0)
        taken.append(answer.taken)
    refused, same = gcra(tat, 100.0, 2.0, 3, 0.0)
    assert taken == [True, True, True] and not refused.taken and refused.wait_s == pytest.approx(2.0)
    assert same == tat  # a refusal reserves nothing
    later, _ = gcra(tat, 102.0, 2.0, 3, 0.0)  # one interval later: one more
    assert later.taken and later.wait_s == 0
    queued, _ = gcra(tat, 100.0, 2.0, 3, 60.0)  # willing to wait: reserved, in 2 s
    assert queued.taken and queued.wait_s == pytest.approx(2.0)


def test_the_address_bucket_never_holds_the_address():
    bucket = ip_bucket("203.0.113.7")
    assert "203" not in bucket and bucket == ip_bucket("203.0.113.7") != ip_bucket("203.0.113.8")


@pytest.fixture(params=["local", "firebase"])
def two_stores(request, tmp_path):
    """Two store objects on one store (what two processes have)."""
    if request.param == "firebase":
        request.getfixturevalue("firebase_env")
    flags = {"store": request.param, "data_dir": tmp_path / "data"}
    one, two = get_store(request.param, load_settings(flags)), get_store(request.param, load_settings(flags))
    yield one, two
    one.close()
    two.close()


def test_a_rate_is_shared_by_two_store_objects(two_stores):
    one, two = two_stores
    now = 1_000_000.0
    answers = [(one if i % 2 else two).take_rate("b.test", 1.0, 4, 0.0, now) for i in range(6)]
    assert [a.taken for a in answers] == [True, True, True, True, False, False]
    assert answers[-1].wait_s == pytest.approx(1.0)
    assert one.take_rate("b.test", 1.0, 4, 0.0, now + 1.0).taken  # refill: one interval, one start
    assert not two.take_rate("b.test", 1.0, 4, 0.0, now + 1.0).taken
    assert two.take_rate("other", 1.0, 4, 0.0, now).taken  # buckets are separate


def test_unauthenticated_requests_are_limited_per_address_across_servers(serve_settings, live, auth_env):
    settings = serve_settings(store="local", serve_worker="off", serve_ip_rate_per_minute=3)
    a, b = live(settings), live(settings)
    statuses = [httpx.get(f"{(a, b)[i % 2].url}{API}/jobs/x", timeout=30) for i in range(5)]
    assert [r.status_code for r in statuses] == [401, 401, 401, 429, 429]
    assert int(statuses[-1].headers["retry-after"]) >= 1
    assert statuses[-1].json()["type"].endswith("rate-limited")


@pytest.mark.slow
def test_two_workers_hold_one_images_per_minute_limit(openai_env, tmp_path, monkeypatch):
    """Two worker processes, the server allowing 4 images per 6-second 'minute': their starts are
    spaced through the store, so together they keep to it (each alone would send 4 a window, and
    the server would refuse about half), and every job is made."""
    ipm, window, jobs = 4, 6.0, 10
    rate = {MODEL: {"images_per_minute": ipm, "window_s": window}}
    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000, "rate_limits": rate})
    flags = {"data_dir": tmp_path / "data", "config_dir": cfg, "provider": "openai", "base_url": openai_env.url}
    core = Mirror(load_settings({**flags, "model": MODEL}))
    try:
        for i in range(jobs):
            core.store.put_user(Persona(id=f"u{i:02d}", name=f"User {i}"))
            core.queue.publish(job_message(f"u{i:02d}", "newReflection"), f"u{i:02d}", {"request_key": "-"})
    finally:
        core.close()
    monkeypatch.setattr(openai_env, "images_per_minute", ipm)
    monkeypatch.setattr(openai_env, "window_s", window)
    env = {**os.environ, **{f"MIRROR_{k.upper()}": str(v) for k, v in flags.items()}, "MIRROR_MODEL": MODEL}
    cmd = [sys.executable, "-m", "mirror_cli", "worker", "--until-empty", "--json"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    errors: list[Any] = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    starts = sorted(r["t"] for r in openai_env.requests)
    spread = [round(t - starts[0], 2) for t in starts]
    assert len(openai_env.ledger) == jobs, (spread, errors)
    # a start that a process starved of CPU sends later than its slot by more than the jitter
    # allowance may still be refused once in a while; the workers' own rates would be refused ~jobs/2 times
    assert openai_env.rate_limited <= 1, spread

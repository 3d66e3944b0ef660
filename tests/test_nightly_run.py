"""The nightly batch under stress: signals, error storms, resumption."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_config_dir, spooled_request_ids
from openai_server import Fault, rate_limit_fault

from mirror_cli.errors import ExitCode
from mirror_cli.models import Persona

GPT_IMAGE_2 = {"text_in": 5.0, "image_in": 8.0, "image_out": 30.0}


@pytest.fixture
def roomy(tmp_path):
    """Configs whose daily caps do not get in the way of a big batch (the store holds only this
    test's users: no example personas are imported)."""
    cfg = make_config_dir(tmp_path, {"system_daily": 10_000, "per_user_daily": 100, "monthly_budget_usd": 1000})
    import yaml

    limits = yaml.safe_load((cfg / "limits.yaml").read_text())
    limits["retry"]["max_attempts"] = 10
    (cfg / "limits.yaml").write_text(yaml.safe_dump(limits))
    return cfg


def test_error_storm_completes_and_report_matches_ledger(make_core, openai_env, roomy):
    fast_configs = roomy
    # 30% of requests fail: 429s, 500s, timeouts (the client gives up after 2 s) and dropped connections
    openai_env.chaos = (
        random.Random(11),
        [(0.15, rate_limit_fault(0.02)), (0.07, Fault(500)), (0.04, Fault(503, delay=2.5)), (0.04, Fault(drop=True))],
    )
    core = make_core(examples=False, provider="openai", base_url=openai_env.url, config_dir=fast_configs, concurrency=6)
    core.import_users([Persona(id=f"s{i:02d}", name="S") for i in range(30)])
    report = core.generate(None, "newReflection")
    assert report.failed == 0 and report.count("generated") == 30
    assert report.retries.retries > 5 and report.retries.rate_limited > 0
    assert len(openai_env.ledger) == 30
    assert report.cost_usd == pytest.approx(openai_env.billed_usd(GPT_IMAGE_2), abs=1e-9)
    paid = [e for e in core.store.events() if e.kind == "generated"]
    assert len(paid) == 30 and sum(e.cost_usd for e in paid) == pytest.approx(report.cost_usd)


def _mirror(data_dir: Path, cfg: Path, url: str, *args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "mirror"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-abcdefghijklmnop",
        "MIRROR_DATA_DIR": str(data_dir),
        "MIRROR_CONFIG_DIR": str(cfg),
        "MIRROR_PROVIDER": "openai",
        "MIRROR_BASE_URL": url,
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigterm_finishes_in_flight_jobs_and_leaves_the_run_resumable(make_core, openai_env, roomy, data_dir):
    fast_configs = roomy
    core = make_core(examples=False, config_dir=fast_configs)
    core.import_users([Persona(id=f"t{i:02d}", name="T") for i in range(20)])
    openai_env.latency = 0.3
    proc = _mirror(
        data_dir, fast_configs, openai_env.url, "evolve", "--due", "--any-hour", "--json", "--concurrency", "2"
    )
    deadline = time.monotonic() + 60
    while len(openai_env.ledger) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    report = json.loads(out)
    assert "SIGTERM" in report["summary"]["stopped"]
    done = report["summary"]["generated"]
    assert 3 <= done < 20 and len(openai_env.ledger) == done  # in-flight jobs finished and were stored
    run_id = report["summary"]["run_id"]

    resumed = _mirror(
        data_dir, fast_configs, openai_env.url, "evolve", "--due", "--any-hour", "--json", "--resume", run_id
    )
    out2, err2 = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err2
    summary = json.loads(out2)["summary"]
    assert summary["generated"] == 20 - done  # the users done before are no longer due
    assert len(openai_env.ledger) == 20
    runs = make_core(examples=False, config_dir=fast_configs).runs()
    assert runs[0].id == run_id and runs[0].state == "finished"


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_until_done(make_core, openai_env, roomy, data_dir):
    """`evolve --due` over 300 users, killed with SIGKILL at random points several times and
    resumed until done: each due user has exactly one new avatar, no request is paid twice, and
    every paid image is in the store."""
    users = 300
    core = make_core(examples=False, config_dir=roomy)
    core.import_users([Persona(id=f"k{i:03d}", name="K") for i in range(users)])
    core.close()
    openai_env.latency = 0.05
    rng = random.Random(7)
    kills = 0
    killed: set[str] = set()  # the server's tags of the processes killed
    kept_at_kills: set[str] = set()  # request ids in the spool right after a kill
    run_id = None
    for attempt in range(12):
        args = ["evolve", "--due", "--any-hour", "--json", "--concurrency", "8"] + (
            ["--resume", run_id] if run_id else []
        )
        proc = _mirror(data_dir, roomy, openai_env.client_url(f"p{attempt}"), *args)
        if kills < 4:
            target = len(openai_env.ledger) + rng.randint(10, 40)
            deadline = time.monotonic() + 60
            while len(openai_env.ledger) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.random() * 0.05)  # a random point, not just after a response
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                killed.add(f"p{attempt}")
                kept_at_kills |= spooled_request_ids(data_dir / "spool")
                kills += 1
                if run_id is None:
                    run_id = make_core(examples=False, config_dir=roomy).runs()[0].id
                continue
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        break
    assert kills == 4
    check = make_core(examples=False, config_dir=roomy)
    assert check.spool.pending() == []
    for uid in check.user_ids():
        assert [r.target for r in check.store.list_avatars(uid)] == ["newReflection"], uid
    stored = [e for e in check.store.events() if e.kind in ("generated", "spool_ingest")]
    assert len(stored) == users
    stored_ids = {e.request_id for e in stored}

    received = kept_at_kills | {e.request_id for e in check.store.events() if e.request_id}

    def in_flight_at_a_kill(entry):
        # sent by a process that was killed and never kept by it (not in the spool it left, not
        # in the ledger): the server's tag says which process sent each request
        return entry["client"] in killed and entry["request_id"] not in received

    # Every image whose answer reached the tool is in the store and in its ledger; the only images
    # not stored are those the API answered while the process was being killed.
    lost = [e for e in openai_env.ledger if e["request_id"] not in stored_ids]
    assert all(in_flight_at_a_kill(e) for e in lost), [(e["client"], e["request_id"]) for e in lost]
    # Nothing is paid twice, except a request in flight at the moment of a SIGKILL (no client can
    # know whether the API billed it: there is no idempotency key), at most `concurrency` per kill.
    by_key: dict[tuple[str, str], list[dict]] = {}
    for e in openai_env.ledger:
        by_key.setdefault((e["safety_identifier"], e["prompt"]), []).append(e)
    assert len(by_key) == users
    for copies in by_key.values():
        early = [(e["client"], e["request_id"], e["request_id"] in received) for e in copies[:-1]]
        assert all(in_flight_at_a_kill(e) for e in copies[:-1]), (early, sorted(killed))
    assert len(openai_env.ledger) - users <= 8 * kills
    flagged = [e for e in check.store.events() if e.kind == "may_have_billed"]
    assert len(flagged) >= len(lost)

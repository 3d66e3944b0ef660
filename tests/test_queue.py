"""The job queue and its workers: Pub/Sub's semantics on the embedded SQLite queue (at least
once, ack deadline, ordering per user, dead letters), and `mirror worker` running queued jobs
through the core, where a redelivered message never pays twice (the loopback OpenAI server's
request log is the truth)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import make_config_dir

from mirror_cli.stores.local.queue import SqliteQueue
from mirror_cli.worker import job_message


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _images(server: Any) -> int:
    return len([r for r in server.requests if "images" in r.get("path", "")])


@pytest.fixture
def queue(tmp_path):
    clock = Clock()
    q = SqliteQueue(root=tmp_path / "q", max_attempts=3, clock=clock)
    yield q, clock
    q.close()


def test_at_least_once_with_an_ack_deadline(queue):
    q, clock = queue
    mid = q.publish({"n": 1}, "u1", {"request_key": "k1"})
    (m,) = q.pull(10, ack_deadline_s=30)
    assert (m.id, m.body, m.attributes, m.attempts) == (mid, {"n": 1}, {"request_key": "k1"}, 1)
    assert q.pull(10, 30) == []  # invisible until its deadline
    clock.t += 31  # its worker died: delivered again
    (again,) = q.pull(10, 30)
    assert again.id == mid and again.attempts == 2
    q.ack(again)
    clock.t += 100
    assert q.pull(10, 30) == [] and q.pending() == 0


def test_nack_redelivers_and_dead_letters_after_max_attempts(queue):
    q, clock = queue
    q.publish({"n": 1}, "u1", {})
    for attempt in (1, 2, 3):
        (m,) = q.pull(1, 30)
        assert m.attempts == attempt
        q.nack(m, delay_s=5)
        assert q.pull(1, 30) == []  # backing off
        clock.t += 5
    assert q.pull(1, 30) == []  # a fourth delivery would exceed max_attempts=3: set aside
    (dead,) = q.dead_letters()
    assert dead.body == {"n": 1} and dead.attempts == 3


def test_one_users_jobs_in_order_users_side_by_side(queue):
    q, _ = queue
    a1 = q.publish({"n": "a1"}, "a", {})
    a2 = q.publish({"n": "a2"}, "a", {})
    b1 = q.publish({"n": "b1"}, "b", {})
    first = q.pull(10, 30)
    assert [m.id for m in first] == [a1, b1]  # a2 waits behind a1, in flight
    q.ack(first[0])
    (second,) = q.pull(10, 30)
    assert second.id == a2


def test_two_queues_on_one_file_never_deliver_a_message_twice(tmp_path):
    one, two = SqliteQueue(root=tmp_path / "q"), SqliteQueue(root=tmp_path / "q")
    ids = {one.publish({"n": i}, f"u{i}", {}) for i in range(20)}
    seen: list[str] = []
    while batch := one.pull(3, 60) + two.pull(3, 60):
        seen.extend(m.id for m in batch)
    assert sorted(seen) == sorted(ids)
    one.close()
    two.close()


@pytest.fixture
def paid_core(make_core, openai_env, tmp_path):
    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000})
    return make_core(provider="openai", base_url=openai_env.url, config_dir=cfg)


def test_worker_runs_jobs_and_a_redelivered_message_pays_nothing(paid_core, openai_env):
    core = paid_core
    for uid in ("demo", "maya"):
        core.queue.publish(job_message(uid, "month"), uid, {"request_key": "-"})
    stats = core.work(until_empty=True)
    assert stats.acked == 2 and stats.outcomes == {"generated": 2}
    assert _images(openai_env) == 2 and core.queue.pending() == 0
    # the same job delivered again (its first worker stored the avatar and died before its ack)
    core.queue.publish(job_message("demo", "month"), "demo", {"request_key": "-"})
    again = core.work(until_empty=True)
    assert again.acked == 1 and again.outcomes == {"cached": 1} and _images(openai_env) == 2


def test_an_unknown_user_is_acked_not_retried_forever(paid_core, openai_env):
    core = paid_core
    core.queue.publish(job_message("nobody", "month"), "nobody", {})
    stats = core.work(until_empty=True)
    assert stats.acked == 1 and stats.outcomes == {"refused": 1} and _images(openai_env) == 0


def test_a_provider_outage_gives_the_job_back(paid_core, openai_env):
    from openai_server import quota_fault

    core = paid_core
    openai_env.push(*[quota_fault() for _ in range(10)])
    core.queue.publish(job_message("demo", "month"), "demo", {})
    first = core.work(until_empty=True)
    # given back with a backoff (not burnt through its attempts in a tight loop), nothing paid
    assert first.acked == 0 and first.retried == 1 and core.queue.pending() == 1
    assert core.queue.dead_letters() == [] and not openai_env.ledger


def test_enqueue_due_then_workers_make_them(paid_core, openai_env):
    core = paid_core
    published = core.enqueue_due(any_hour=True)
    assert published >= 2 and core.queue.pending() == published
    stats = core.work(until_empty=True, batch=2)
    assert stats.acked == published and _images(openai_env) == published
    assert core.enqueue_due(any_hour=True) == 0  # everyone is at their stage now


@pytest.fixture
def pubsub_queue(pubsub_emulator, monkeypatch):
    import uuid

    from mirror_cli.settings import load_settings
    from mirror_cli.stores.queue import get_queue

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    monkeypatch.setenv("MIRROR_FIREBASE_PROJECT", "demo-mirror-queue")
    topic = f"jobs-{uuid.uuid4().hex[:8]}"  # a topic of this test's own
    flags = {"queue": "pubsub", "pubsub_topic": topic}
    q = get_queue("pubsub", load_settings(flags))
    yield q, flags
    q.close()


def _pull_all(q: Any, n: int, deadline_s: float = 60) -> list[Any]:
    import time

    got: list[Any] = []
    until = time.monotonic() + 30
    while len(got) < n and time.monotonic() < until:
        got.extend(q.pull(10, deadline_s))
    return got


def test_pubsub_queue_on_the_emulator(pubsub_queue):
    q, _ = pubsub_queue
    ids = {q.publish({"n": i}, f"u{i}", {"request_key": f"k{i}"}) for i in range(3)}
    got = _pull_all(q, 3)
    assert {m.id for m in got} == ids and all(m.attempts >= 1 and m.receipt for m in got)
    assert {m.attributes["request_key"] for m in got} == {"k0", "k1", "k2"}
    given_back = got[0]
    for m in got[1:]:
        q.ack(m)
    q.nack(given_back)  # delivered again, and nothing acked comes back
    (again,) = _pull_all(q, 1)
    assert again.id == given_back.id and again.body == given_back.body
    q.ack(again)
    assert q.pull(10, 60) == []


def test_worker_on_pubsub_never_pays_a_redelivery_twice(pubsub_queue, make_core, openai_env, tmp_path):
    _, flags = pubsub_queue
    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000})
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, **flags)
    core.queue.publish(job_message("demo", "month"), "demo", {"request_key": "-"})
    core.queue.publish(job_message("demo", "month"), "demo", {"request_key": "-"})  # a duplicate
    stats = core.work(until_empty=True)
    assert stats.acked == 2 and sorted(stats.outcomes) == ["cached", "generated"]
    assert _images(openai_env) == 1


def test_enqueue_refuses_a_dry_run_and_a_missing_due_naming_why(tmp_path):
    from typer.testing import CliRunner

    from mirror_cli.cli.app import app

    data = tmp_path / "data"
    runner = CliRunner()
    dry = runner.invoke(app, ["evolve", "--due", "--enqueue", "--dry-run", "--json", "--data-dir", str(data)])
    assert dry.exit_code == 2 and "dry run publishes nothing" in json.loads(dry.stdout)["message"]
    alone = runner.invoke(app, ["evolve", "--enqueue", "--json", "--data-dir", str(data)])
    assert alone.exit_code == 2 and "--enqueue goes with --due" in json.loads(alone.stdout)["message"]
    assert not data.exists()  # refused before the store was opened

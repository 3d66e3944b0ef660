"""The app's slow jobs on the job queue: a 202 is published (ordering key = the user, attributes =
its request key) and finished by a worker when the instance that answered it cannot; the answer is
in the store before the message is acked, and a redelivered message never pays twice. In-process
servers for the quick paths; real `mirror serve` and `mirror worker` processes, one killed with
SIGKILL mid-job, on the embedded store and on the Firestore/Storage/Pub/Sub emulators."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_support import ServeProcess, auth_env, bearer, images_bought, live, new_user, poll_job, serve_settings

from mirror_cli.core import Mirror
from mirror_cli.models import Persona
from mirror_cli.server.queued import APP_JOB
from mirror_cli.server.service import worker_handlers
from mirror_cli.stores.base import AppJob

API = "/api/v1"
LIMITS = {"claims": {"lease_s": 2, "poll_s": 0.1, "wait_s": 60}}


def _generate(uid: str, stage: str = "month") -> dict[str, object]:
    return {"user_id": uid, "evolution_stage": stage, "progress_metrics": {"active_days": 31, "goals_completed": 4}}


def _dead_job(core: Mirror, uid: str) -> AppJob:
    """What an instance killed mid-job leaves: a running job whose instance is gone, lease over."""
    past = datetime.now(UTC) - timedelta(hours=1)
    params = {"user_id": uid, "target": "month", "progress": None, "regenerate": False}
    job = AppJob(uuid.uuid4().hex, uid, "generate", "k", params, "gone:1:x", past, past)
    core.store.put_app_job(job)
    return job


def _publish(core: Mirror, job: AppJob) -> None:
    body = {"kind": APP_JOB, "job_id": job.id, "user_id": job.owner, "job": job.kind}
    core.queue.publish(body, job.owner, {"request_key": job.key, "job": job.id})


def test_a_202_is_published_with_the_user_as_ordering_key(serve_settings, live, auth_env, openai_env):
    settings = serve_settings(limits=LIMITS, store="local", serve_wait_s=0.2, serve_worker="off")
    a = live(settings)
    core = a.service.core
    uid, token = new_user(auth_env, core.store)
    openai_env.hold()
    with httpx.Client(headers=bearer(token), timeout=60) as c:
        accepted = c.post(a.url + API + "/avatar/generate", json=_generate(uid))
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        (message,) = core.queue.pull(10, 60)
        assert message.ordering_key == uid and message.body["kind"] == APP_JOB
        assert message.body["job_id"] == job_id and message.attributes["job"] == job_id
        assert message.attributes["request_key"] == core.store.get_app_job(job_id).key
        core.queue.nack(message)
        # a worker (a core of its own) while A runs it under a live lease: given back, not run twice
        worker = Mirror(settings)
        try:
            stats = worker.work(until_empty=True, handlers=worker_handlers(worker))
        finally:
            worker.close()
        assert stats.acked == 0 and stats.retried == 1 and images_bought(openai_env) == 1
        openai_env.release()
        done = poll_job(c, a.url + API + "/jobs/" + job_id)
        assert done.status_code == 200, done.text
    assert images_bought(openai_env) == 1 and len(openai_env.ledger) == 1


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_a_worker_finishes_a_job_whose_instance_died_and_a_redelivery_pays_nothing(
    serve_settings, live, auth_env, openai_env, store
):
    b = live(serve_settings(limits=LIMITS, store=store, serve_worker="off"))
    uid, token = new_user(auth_env, b.service.core.store)
    worker = Mirror(serve_settings(limits=LIMITS, store=store))
    try:
        dead = _dead_job(worker, uid)
        _publish(worker, dead)
        with httpx.Client(headers=bearer(token), timeout=60) as c:
            stats = worker.work(until_empty=True, handlers=worker_handlers(worker))
            assert stats.acked == 1 and stats.retried == 0
            # acked only once the answer is in the store: B answers the poll from it at once
            done = c.get(f"{b.url}{API}/jobs/{dead.id}")
            assert done.status_code == 200 and done.json()["status"] == "generated", done.text
            assert images_bought(openai_env) == 1
            _publish(worker, dead)  # the same message again (its worker died before the ack)
            again = worker.work(until_empty=True, handlers=worker_handlers(worker))
            assert again.acked == 1 and images_bought(openai_env) == 1
            assert c.get(f"{b.url}{API}/jobs/{dead.id}").json()["avatar_id"] == done.json()["avatar_id"]
    finally:
        worker.close()


def test_mirror_serve_runs_the_queue_itself_on_one_machine(serve_settings, live, auth_env, openai_env):
    a = live(serve_settings(limits=LIMITS, store="local"))  # serve_worker auto: the local queue is embedded
    core = a.service.core
    uid, _ = new_user(auth_env, core.store)
    dead = _dead_job(core, uid)
    _publish(core, dead)
    deadline = time.monotonic() + 120
    while (found := core.store.get_app_job(dead.id)) is not None and found.state != "done":
        assert time.monotonic() < deadline, "the embedded worker never finished the job"
        time.sleep(0.1)
    assert found is not None and found.status == 200 and images_bought(openai_env) == 1


def _process_env(settings_flags: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
    env = {f"MIRROR_{k.upper()}": str(v) for k, v in settings_flags.items()}
    return {**env, "MIRROR_SERVE_WORKER": "off", **extra}


@pytest.mark.slow
@pytest.mark.parametrize("store", ["local", "firebase"])
def test_instance_killed_mid_job_another_worker_finishes_it(
    serve_settings, auth_env, openai_env, tmp_path, store, request, monkeypatch
):
    """A answers 202 and is killed (SIGKILL) with its request in flight at the provider; B answers
    the poll from the store; a `mirror worker` process takes the job over, books the request A
    may have had billed, and stores the avatar once; a redelivered message pays nothing."""
    queue: dict[str, str] = {}
    if store == "firebase":
        emu = request.getfixturevalue("pubsub_emulator")
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
        queue = {"queue": "pubsub", "pubsub_topic": f"jobs-{uuid.uuid4().hex[:8]}"}
    settings = serve_settings(limits=LIMITS, store=store, **queue)
    flags = {
        "store": store,
        "data_dir": settings.data_dir,
        "config_dir": settings.config_dir,
        "provider": "openai",
        "base_url": openai_env.url,
        **queue,
    }
    checker = Mirror(settings)  # made before the processes: it creates the topic and subscriptions
    uid, token = auth_env.sign_up()
    checker.store.put_user(Persona(id=uid, name="Ada"))
    a = ServeProcess(tmp_path / "a.log", [], _process_env(flags, {"MIRROR_SERVE_WAIT_S": "0.2"}))
    b = ServeProcess(tmp_path / "b.log", [], _process_env(flags, {"MIRROR_SERVE_WAIT_S": "0.2"}))
    cmd = [sys.executable, "-m", "mirror_cli", "worker", "--json"]
    worker = subprocess.Popen(
        cmd,
        env={**os.environ, **_process_env(flags, {})},
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    try:
        openai_env.hold()
        with httpx.Client(headers=bearer(token), timeout=60) as c:
            accepted = c.post(a.url + API + "/avatar/generate", json=_generate(uid))
            assert accepted.status_code == 202, accepted.text
            url = accepted.headers["location"]
            assert c.get(b.url + url).status_code == 202  # B answers from the store
            openai_env.wait_for_requests(1)  # A's request is at the provider, its answer held
            a.kill()
            openai_env.wait_for_requests(2, timeout_s=120)  # the worker took the job over
            openai_env.release()  # A's answer is billed and lost with its connection
            done = poll_job(c, b.url + url, timeout_s=180)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "generated"
        events = checker.store.events(uid=uid)
        paid = [e for e in events if e.kind in ("generated", "ingested", "spool_ingest")]
        maybe = [e for e in events if e.kind == "may_have_billed"]
        billed = len(openai_env.ledger)
        answered = len(paid)
        # every request the server billed and nobody received is booked; paid at most one more
        # than the server billed for unanswered requests
        unanswered = billed - answered
        assert unanswered == 1 and len(maybe) == unanswered, (billed, [e.kind for e in events])
        assert answered <= unanswered + 1
        assert [r.target for r in checker.store.list_avatars(uid)] == ["month"]
        # the message again (a worker that died before its ack): answered from the store, nothing paid
        worker.kill()
        job = checker.store.get_app_job(accepted.json()["job_id"])
        assert job is not None and job.state == "done"
        _publish(checker, job)
        again = checker.work(until_empty=True, handlers=worker_handlers(checker))
        assert again.acked >= 1 and again.retried == 0 and len(openai_env.ledger) == billed
    finally:
        worker.kill()
        worker.wait(timeout=30)
        a.kill()
        b.kill()
        checker.close()

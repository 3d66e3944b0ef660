"""The Firestore emulator goes away in the middle of a batch: the run says which jobs failed and
why, stops buying images it cannot store, loses none it paid for, and a resumed run completes
them without paying again."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import emulators as emu
import pytest


@pytest.fixture
def outage(emulators, monkeypatch, make_core, openai_env, fast_configs):
    """A Firestore emulator of this test's own (the session's one must survive)."""
    firestore = emu.FirestoreEmulator()
    project, bucket = emulators.new_namespace()
    firestore.warm(project)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore.host)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulators.storage_url)
    openai_env.latency = 0.4

    def core():
        return make_core(
            store="firebase",
            firebase_project=project,
            firebase_bucket=bucket,
            provider="openai",
            base_url=openai_env.url,
            config_dir=fast_configs,
            concurrency=2,
            store_timeout_s=1.5,
        )

    yield firestore, core, project
    with contextlib.suppress(ProcessLookupError):
        os.kill(firestore.proc.pid, signal.SIGCONT)
    firestore.stop()


def _when_served(server, n, action):
    def watch():
        deadline = time.monotonic() + 60
        while len(server.ledger) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def _paid_keys_once(server):
    keys = [(e["safety_identifier"], e["prompt"]) for e in server.ledger]
    assert len(keys) == len(set(keys)), "a request was paid for twice"


def test_killed_emulator_loses_no_paid_image(outage, openai_env):
    firestore, make, _project = outage
    core = make()
    _when_served(openai_env, 2, firestore.kill).join(0)
    report = core.generate(None, "newReflection")
    assert report.stopped and "store is unavailable" in report.stopped
    failed = [o for o in report.outcomes if o.status == "failed"]
    assert failed and all("Firebase is unreachable" in (o.reason or "") for o in failed)
    stored = report.count("generated")
    spooled = core.spool.pending()
    assert len(openai_env.ledger) == stored + len(spooled)  # every paid image is stored or spooled
    assert len(openai_env.ledger) < 6  # the run stopped buying once the store was gone
    _paid_keys_once(openai_env)


def test_unreachable_emulator_then_resume_pays_nothing_twice(outage, openai_env):
    firestore, make, project = outage
    core = make()
    _when_served(openai_env, 2, lambda: os.kill(firestore.proc.pid, signal.SIGSTOP))
    report = core.generate(None, "newReflection")
    assert report.stopped and "store is unavailable" in report.stopped
    assert any(o.status == "failed" and "unreachable" in (o.reason or "") for o in report.outcomes)
    paid_during_outage = len(openai_env.ledger)
    spooled = len(core.spool.pending())
    assert spooled >= 1

    os.kill(firestore.proc.pid, signal.SIGCONT)  # the emulator is back, data intact
    firestore.warm(project)
    resumed = make().generate(None, "newReflection", resume=report.run_id)
    assert resumed.stopped is None and resumed.failed == 0
    assert resumed.count("ingested") == spooled  # from the spool, not bought again
    assert len(openai_env.ledger) == 6 == paid_during_outage + resumed.count("generated")
    _paid_keys_once(openai_env)
    check = make()
    for uid in check.user_ids():
        assert [r.target for r in check.store.list_avatars(uid)] == ["newReflection"], uid
    assert check.spool.pending() == []
    assert sum(1 for e in check.store.events() if e.kind in ("generated", "spool_ingest")) == 6


def test_stalled_storage_server_stops_the_run_resumably_never_hangs(emulators, monkeypatch, make_core, tmp_path):
    """Cloud Storage stops answering (SIGSTOP) in the middle of a run: every call has a timeout
    and a bounded retry, so the run stops with a store error instead of hanging, and resumes."""
    from mirror_cli.models import Persona

    storage = emu.StorageEmulator()
    try:
        project, bucket = emulators.new_namespace()
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.url)
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        gcs.Client(project=project, credentials=AnonymousCredentials()).create_bucket(bucket)
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulators.firestore.host)
        emulators.firestore.warm(project)
        flags = {"store": "firebase", "firebase_project": project, "firebase_bucket": bucket, "store_timeout_s": 1.5}
        core = make_core(**flags)
        core.import_users([Persona(id=f"g{i}", name="G") for i in range(6)])
        os.kill(storage.proc.pid, signal.SIGSTOP)
        result: dict[str, object] = {}
        worker = threading.Thread(target=lambda: result.update(report=core.generate(None, "newReflection")))
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "the run hung on a stalled storage server"
        report = result["report"]
        assert report.stopped and "store is unavailable" in report.stopped  # type: ignore[attr-defined]
        os.kill(storage.proc.pid, signal.SIGCONT)
        resumed = make_core(**flags).generate(None, "newReflection", resume=report.run_id)  # type: ignore[attr-defined]
        assert resumed.stopped is None and resumed.failed == 0
        check = make_core(**flags)
        assert all(len(check.store.list_avatars(f"g{i}")) == 1 for i in range(6))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(storage.proc.pid, signal.SIGCONT)
        storage.stop()


def _held(project: str) -> list[dict]:
    """The reservations still held in the project (read on the emulator, apart from the tool)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    db = firestore.Client(project=project, credentials=AnonymousCredentials())
    return [d.to_dict() for d in db.collection("reservations").stream() if (d.to_dict() or {}).get("state") == "held"]


def test_stalled_firestore_ends_the_run_within_its_timeout_exit_8(outage, openai_env, tmp_path):
    """Firestore stops answering (SIGSTOP) while the first image is being bought: the run ends
    with exit 8 within one store timeout plus the retry budget of the settings, not a timeout per
    store call left on the way out (64 s with a 3 s timeout before the fix)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from mirror_cli.models import Persona

    firestore, make, project = outage
    timeout_s, retry_s = 3.0, 1.0
    core = make()
    core.import_users([Persona(id=f"s{i}", name="S") for i in range(6)])
    settings = core.settings
    core.close()
    env = {
        **os.environ,
        "MIRROR_STORE": "firebase",
        "MIRROR_FIREBASE_PROJECT": project,
        "MIRROR_FIREBASE_BUCKET": str(settings.firebase_bucket),
        "MIRROR_STORE_TIMEOUT_S": str(timeout_s),
        "MIRROR_STORE_RETRY_S": str(retry_s),
        "MIRROR_CONFIG_DIR": str(settings.config_dir),
        "MIRROR_DATA_DIR": str(settings.data_dir),
        "MIRROR_PROVIDER": "openai",
        "MIRROR_BASE_URL": openai_env.url,
        "OPENAI_API_KEY": "sk-test-abcdefghijklmnop",
    }
    openai_env.latency = 0.0
    openai_env.hold()  # every answer waits: the stall starts while the first request is in flight
    cmd = [str(Path(sys.executable).parent / "mirror"), "evolve", "--due", "--any-hour", "--json"]
    proc = subprocess.Popen(
        [*cmd, "--concurrency", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        openai_env.wait_for_requests(1)
        os.kill(firestore.proc.pid, signal.SIGSTOP)
        stalled_at = time.monotonic()
        openai_env.release()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - stalled_at
    finally:
        openai_env.release()
        if proc.poll() is None:
            proc.kill()
        os.kill(firestore.proc.pid, signal.SIGCONT)
    print(
        f"\n[stall] store_timeout_s={timeout_s} store_retry_s={retry_s} exit={proc.returncode} ended_after={took:.2f}s"
    )
    assert proc.returncode == 8, err[-2000:]
    assert took <= timeout_s + retry_s + 2.5, took
    summary = json.loads(out)["summary"]
    assert summary["store_error"] and summary["stopped"], summary
    # the store is back: the resumed run stores what was paid and settles what was reserved
    firestore.warm(project)
    resumed = subprocess.run(
        [*cmd, "--resume", summary["run_id"]],
        capture_output=True,
        text=True,
        env={**env, "MIRROR_STORE_TIMEOUT_S": "30"},  # the resumed JVM's first answers are slow
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert _held(project) == []  # every reservation of both runs settled or released


def test_one_stalled_store_call_ends_every_waiting_and_new_call_at_once():
    """The deadline of the first stalled call ends the calls waiting beside it (whose own
    deadlines are later) and fails new calls at once, so a run's way out costs no more timeouts."""
    import asyncio

    from mirror_cli.errors import StoreError
    from mirror_cli.stores.calls import StoreCalls

    calls = StoreCalls(workers=4, deadline_s=2.0)
    stalled = threading.Event()  # the "store": never answers until the test ends

    async def run() -> tuple[list[BaseException | bool], float, float]:
        t0 = time.monotonic()
        first = asyncio.ensure_future(calls(stalled.wait, 60))
        await asyncio.sleep(1.0)
        second = asyncio.ensure_future(calls(stalled.wait, 60))  # its own deadline: t0 + 3 s
        ended = await asyncio.gather(first, second, return_exceptions=True)
        took = time.monotonic() - t0
        t1 = time.monotonic()
        try:
            await calls(lambda: True)
        except StoreError as exc:
            ended.append(exc)
        return ended, took, time.monotonic() - t1

    try:
        ended, took, new_call = asyncio.run(run())
    finally:
        stalled.set()
        calls.close()
    assert len(ended) == 3 and all(isinstance(e, StoreError) for e in ended), ended
    assert took < 2.8, took  # with the first call's deadline, not the second's
    assert new_call < 0.5, new_call
    assert calls.down is not None

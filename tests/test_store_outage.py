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

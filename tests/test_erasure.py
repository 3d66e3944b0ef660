"""Erasure (`mirror users delete`, core.erase_user): after it no SQLite row, file or folder of
the store names the user, other users are untouched, spend stays (re-keyed to a pseudonym), a
repeat is a no-op success, a crash half-way is finished by the next call, and a late write for
the erased user is refused. Runs on the embedded store (real SQLite, real files)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.erasure import finish_pending_erasures
from mirror_cli.errors import UserErasedError
from mirror_cli.models import ImageResult, LedgerEvent, TokenUsage
from mirror_cli.reporting import file_report
from mirror_cli.stores.base import AppJob, Caps, Claim, Review, Selection, register_store
from mirror_cli.stores.local import LocalStore
from mirror_cli.stores.local.forget import id_pattern
from mirror_cli.stores.local.queue import SqliteQueue
from mirror_cli.worker import job_message, user_erased

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
VICTIM, OTHER = "maya", "kenji"


def _seed(core, uid: str, cost: float) -> None:
    """One of every kind of record a user leaves behind, through the store's own calls."""
    store = core.store
    store.record_event(
        LedgerEvent(ts=NOW, user_id=uid, kind="generated", cost_usd=cost, usage=TokenUsage(output_image_tokens=10)),
        event_id=f"maybe:{uid}:k1:abc",
    )
    store.record_event(LedgerEvent(ts=NOW, user_id=uid, kind="failed", detail=f"job of {uid} failed"))
    ref, thumb = store.put_image(uid, "newReflection-a1", b"image", b"thumb")
    store.claim(Claim(f"{uid}/key1", "host:1:n", NOW + timedelta(minutes=5), NOW, {"user": uid}), NOW)
    store.reserve(uid, "key1", 0.04, NOW, Caps(None, None, None))
    store.put_selection(Selection(uid, f"av-{uid}", "newReflection", "newReflection", NOW))
    store.put_review(Review("avatar", f"{uid}/av-{uid}", "draft", "0" * 64, note=uid))
    store.put_app_job(AppJob(f"job-{uid}", uid, "generate", f"k-{uid}", {"user_id": uid}, "i1", NOW, NOW))
    core.spool.put(
        uid,
        "key1",
        ImageResult(data=b"img", mime="image/png", provider="local", model="local", usage=TokenUsage()),
        {"user": uid},
    )
    assert ref and thumb
    # a report on their avatar, with its prompt copied in and a count against their daily limit
    file_report(store, store.list_avatars(uid)[0], "offensive", note=f"{uid} reported it", now=NOW, daily_limit=5)


def _naming(data_dir: Path, uid: str) -> list[str]:
    """Every SQLite cell and every file path or text file under the data folder that names uid."""
    found: list[str] = []
    pattern = id_pattern(uid)
    db = sqlite3.connect(data_dir / "mirror.db")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # names from sqlite_master
                found += [f"{table}: {row}" for cell in row if isinstance(cell, str) and pattern.search(cell)]
    finally:
        db.close()
    for path in data_dir.rglob("*"):
        rel = str(path.relative_to(data_dir))
        if pattern.search(rel):
            found.append(rel)
        elif path.is_file() and path.suffix not in {".db", ".db-wal", ".db-shm"} and path.stat().st_size < 1 << 20:
            text = path.read_bytes().decode("utf-8", "replace")
            if pattern.search(text):
                found.append(f"content of {rel}")
    return found


@pytest.fixture
def core(make_core):
    c = make_core(now=lambda: NOW)
    c.generate([VICTIM, OTHER], "newReflection")  # the local provider: real avatars, cache, run jobs
    _seed(c, VICTIM, 0.25)
    _seed(c, OTHER, 0.5)
    return c


def _cost(core) -> float:
    return float(core.usage().cost_usd)


def test_erasure_leaves_nothing_naming_the_user_and_keeps_spend(core, data_dir):
    queue = SqliteQueue(root=data_dir)  # the embedded queue: pending jobs are rows of the store's file
    for uid in (VICTIM, OTHER):
        queue.publish(job_message(uid, "month"), uid, {"request_key": f"k-{uid}"})
    before, other_avatars = _cost(core), core.store.list_avatars(OTHER)
    assert _naming(data_dir, VICTIM) and other_avatars  # there is something to erase
    out = core.erase_user(VICTIM)
    assert out["already_erased"] is False and out["removed"]["avatars"] >= 1 and out["removed"]["profile"] == 1
    assert out["removed"]["queued"] == 1 and queue.pending() == 1  # the other user's job still waits
    assert core.store.pending_erasures(10) == []  # finished: nothing left for the nightly run
    assert out["removed"]["reports"] == 1 and [r.user_id for r in core.store.list_reports()] == [OTHER]
    core.store.flush_ops()
    queue.close()
    assert _naming(data_dir, VICTIM) == []
    assert _cost(core) == pytest.approx(before)  # spend stays, under the pseudonym
    alias = out["pseudonym"]
    assert alias.startswith("erased-") and VICTIM not in alias
    assert sum(e.cost_usd for e in core.store.events(uid=alias)) == pytest.approx(0.25)
    # the other user is untouched
    assert core.store.get_user(OTHER) is not None and core.store.list_avatars(OTHER) == other_avatars
    assert core.store.get_selection(OTHER) is not None and core.spool.get(OTHER, "key1") is not None
    assert _naming(data_dir, OTHER)
    # a repeat is a no-op success
    again = core.erase_user(VICTIM)
    assert again["already_erased"] is True and again["pseudonym"] == alias
    assert set(again["removed"].values()) == {0}
    assert _cost(core) == pytest.approx(before)


def test_a_late_write_for_an_erased_user_is_refused(core, data_dir):
    record = core.store.list_avatars(VICTIM)[0]
    persona = core.store.get_user(VICTIM)
    core.erase_user(VICTIM)
    with pytest.raises(UserErasedError):
        core.store.put_avatar(record)  # a late job's record
    with pytest.raises(UserErasedError):
        core.store.put_image(VICTIM, "late", b"x", None)
    with pytest.raises(UserErasedError):
        core.store.put_user(persona)  # a late request re-creating the profile
    assert _naming(data_dir, VICTIM) == []
    core.store.put_avatar(core.store.list_avatars(OTHER)[0])  # others write as before


def _crash_first_forget(monkeypatch, store, error: Exception) -> None:
    """The store's first forget_avatars call fails with ``error`` (a crash half-way through an
    erasure); later calls do the real work."""
    real, calls = store.forget_avatars, {"n": 0}

    def crash_once(uid: str) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real(uid)

    monkeypatch.setattr(store, "forget_avatars", crash_once)


def test_a_crash_half_way_is_finished_by_the_next_call(core, data_dir, monkeypatch):
    before = _cost(core)
    _crash_first_forget(monkeypatch, core.store, OSError("disk went away"))
    with pytest.raises(OSError):
        core.erase_user(VICTIM)
    assert core.store.is_erased(VICTIM)  # the tombstone was written first ...
    with pytest.raises(UserErasedError):
        core.store.put_image(VICTIM, "late", b"x", None)  # ... so nothing new lands meanwhile
    assert _naming(data_dir, VICTIM)  # half done
    out = core.erase_user(VICTIM)
    assert out["already_erased"] is True and out["removed"]["avatars"] >= 1
    assert _naming(data_dir, VICTIM) == [] and _cost(core) == pytest.approx(before)


def test_cli_delete_needs_yes_and_then_erases(data_dir, make_core):
    make_core().close()  # the example personas in the store
    flags = ["--data-dir", str(data_dir)]
    refused = CliRunner().invoke(app, ["users", "delete", "--user", VICTIM, *flags])
    assert refused.exit_code == 2 and "--yes" in refused.output
    listed = CliRunner().invoke(app, ["users", "list", "--json", *flags])
    assert VICTIM in listed.output  # nothing changed
    done = CliRunner().invoke(app, ["users", "delete", "--user", VICTIM, "--yes", "--json", *flags])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["summary"]["removed"]["profile"] == 1
    listed = CliRunner().invoke(app, ["users", "list", "--json", *flags])
    assert VICTIM not in listed.output and OTHER in listed.output
    again = CliRunner().invoke(app, ["users", "delete", "--user", VICTIM, "--yes", *flags])
    assert again.exit_code == 0 and "already been erased" in again.output
    bad = CliRunner().invoke(app, ["users", "delete", "--user", "../x", "--yes", *flags])
    assert bad.exit_code == 2


def _firestore_naming(store, uid: str) -> list[str]:
    """Every document (id or field, every collection and subcollection) and every Storage
    object (name or metadata) that names uid."""
    pattern, found = id_pattern(uid), []
    pending = list(store.db.collections())
    while pending:
        collection = pending.pop()
        for doc in collection.stream():
            if pattern.search(doc.id) or pattern.search(json.dumps(doc.to_dict(), default=str)):
                found.append(doc.reference.path)
            pending += list(doc.reference.collections())
    for blob in store.bucket.list_blobs():
        if pattern.search(blob.name) or pattern.search(json.dumps(blob.metadata or {})):
            found.append(f"gs://{blob.name}")
    return found


def test_erasure_on_firestore_and_storage(firebase_env, make_core, data_dir, monkeypatch):
    core = make_core(store="firebase", now=lambda: NOW)
    core.generate([VICTIM, OTHER], "newReflection")
    _seed(core, VICTIM, 0.25)
    _seed(core, OTHER, 0.5)
    before, other_avatars = _cost(core), core.store.list_avatars(OTHER)
    assert _firestore_naming(core.store, VICTIM) and other_avatars
    _crash_first_forget(monkeypatch, core.store, OSError("connection reset"))
    with pytest.raises(OSError):
        core.erase_user(VICTIM)
    with pytest.raises(UserErasedError):
        core.store.put_image(VICTIM, "late", b"x", None)  # the tombstone came first
    assert core.store.pending_erasures(10) == [VICTIM]  # what the nightly run would finish
    out = core.erase_user(VICTIM)  # finishes the job
    assert core.store.pending_erasures(10) == []
    assert out["already_erased"] is True and out["removed"]["avatars"] >= 1
    assert _firestore_naming(core.store, VICTIM) == [] and _naming(data_dir, VICTIM) == []
    assert _cost(core) == pytest.approx(before)
    assert sum(e.cost_usd for e in core.store.events(uid=out["pseudonym"])) == pytest.approx(0.25)
    assert core.store.list_avatars(OTHER) == other_avatars and core.store.get_user(OTHER) is not None
    again = core.erase_user(VICTIM)
    assert set(again["removed"].values()) == {0}
    with pytest.raises(UserErasedError):
        core.store.put_avatar(other_avatars[0].model_copy(update={"user_id": VICTIM}))


class CrashAtAvatars(LocalStore):
    """The local store failing half-way through an erasure, as a machine losing power would: the
    same Protocol, every other method the real one."""

    def forget_avatars(self, uid: str) -> int:
        raise OSError("the machine lost power")


def test_the_nightly_run_finishes_an_erasure_a_crash_left_half_done(make_core, data_dir):
    register_store("crash-at-avatars", CrashAtAvatars)
    crashing = make_core(store="crash-at-avatars", now=lambda: NOW)
    crashing.generate([VICTIM, OTHER, "leo"], "newReflection")
    _seed(crashing, VICTIM, 0.25)
    for uid in (VICTIM, "leo"):
        with pytest.raises(OSError):
            crashing.erase_user(uid)
    crashing.close()
    nightly = make_core(examples=False, now=lambda: NOW)
    assert nightly.store.is_erased(VICTIM) and _naming(data_dir, VICTIM)  # tombstoned, half done
    assert sorted(nightly.store.pending_erasures(10)) == sorted([VICTIM, "leo"])
    assert len(nightly.store.pending_erasures(1)) == 1  # a nightly run takes a bounded number
    report = nightly.evolve(None, due=True, any_hour=True)
    aliases = sorted(nightly.store.pseudonym(u) for u in (VICTIM, "leo"))
    assert sorted(report.summary()["tick"]["erasures"]["finished"]) == aliases  # named by pseudonym only
    assert VICTIM not in json.dumps(report.summary()["tick"])
    nightly.store.flush_ops()
    assert _naming(data_dir, VICTIM) == [] and nightly.store.pending_erasures(10) == []
    victim_alias = nightly.store.pseudonym(VICTIM)
    assert sum(e.cost_usd for e in nightly.store.events(uid=victim_alias)) == pytest.approx(0.25)
    assert nightly.store.get_user(OTHER) is not None
    again = nightly.evolve(None, due=True, any_hour=True)
    assert "erasures" not in again.summary()["tick"]  # nothing left to finish
    assert finish_pending_erasures(nightly, 5) == {"finished": [], "failed": 0}


def test_a_late_queued_job_of_an_erased_user_is_dropped_unworked(
    pubsub_emulator, monkeypatch, make_core, openai_env, fast_configs
):
    """Pub/Sub cannot delete a published message: the worker acks it without work once the
    user has a tombstone (here an erasure still under way, the profile not yet gone)."""
    import uuid

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    monkeypatch.setenv("MIRROR_FIREBASE_PROJECT", "demo-mirror-queue")
    flags = {"queue": "pubsub", "pubsub_topic": f"erase-{uuid.uuid4().hex[:8]}"}
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs, **flags)
    core.queue.publish(job_message(VICTIM, "newReflection"), VICTIM, {"request_key": "-"})
    core.queue.publish(job_message(OTHER, "newReflection"), OTHER, {"request_key": "-"})
    core.store.put_tombstone(VICTIM, NOW)  # the erasure's first step
    assert core.store.get_user(VICTIM) is not None
    stats = core.work(until_empty=True)
    assert stats.acked == 2 and stats.outcomes == {"erased": 1, "generated": 1}
    images = [r for r in openai_env.requests if "images" in r.get("path", "")]
    assert len(images) == 1 and core.store.list_avatars(VICTIM) == []
    assert core.work(until_empty=True).acked == 0  # acked: never delivered again


def test_the_worker_check_of_a_tombstone(make_core):
    core = make_core(now=lambda: NOW)
    assert not user_erased(core.store, VICTIM)
    core.store.put_tombstone(VICTIM, NOW)
    assert user_erased(core.store, VICTIM) and not user_erased(core.store, OTHER)
    assert not user_erased(core.store, "../etc") and not user_erased(core.store, "")  # left to the job
    assert not user_erased(object(), VICTIM)  # a store that cannot erase has no tombstones


def test_erasure_deletes_the_openai_files_still_held_for_the_user(make_core, openai_env, data_dir, tmp_path):
    """An edit in a Batch API batch still in flight references files uploaded for the user (their
    avatars): erasure deletes them at OpenAI and takes the user's jobs out of the run's record;
    collecting the batch later stores the other users' images and never re-creates the user."""
    from conftest import make_config_dir

    from mirror_cli.models import Progress

    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000})
    flags = {"base_url": openai_env.url, "config_dir": cfg, "now": lambda: NOW}
    make_core(provider="openai", **flags).generate([VICTIM, OTHER], "newReflection")  # the anchors
    batch = make_core(examples=False, provider="openai-batch", **flags)
    for uid in (VICTIM, OTHER):
        batch.set_progress(uid, Progress(active_days=30))
    run_id = batch.evolve(None, due=True, any_hour=True).run_id

    def held(uid: str) -> set[str]:
        uploads = batch.store.get_run(run_id).params["uploads"].values()
        return {str(e["id"]) for e in uploads if uid in e["users"]}

    victim_files, other_files = held(VICTIM), held(OTHER)
    assert victim_files and other_files and (victim_files | other_files) <= set(openai_env.files)
    out = batch.erase_user(VICTIM)
    assert out["removed"]["openai_files"] == len(victim_files)
    assert victim_files <= set(openai_env.deleted_files) and not victim_files & set(openai_env.files)
    assert other_files <= set(openai_env.files) and held(VICTIM) == set()
    batch.store.flush_ops()
    assert _naming(data_dir, VICTIM) == []  # the run's record names the user no more
    report = batch.poll(run_id, wait=True, poll_s=0.01)
    made = {o.user_id for o in report.outcomes if o.status == "generated"}
    assert OTHER in made and VICTIM not in made
    assert batch.store.get_user(VICTIM) is None and batch.store.list_avatars(VICTIM) == []
    assert _naming(data_dir, VICTIM) == []


def test_erasure_on_firestore_crosses_the_batch_limit_a_page_at_a_time(firebase_env, make_core):
    """1,200 avatar documents: more than two 500-write batches. Every one goes, each page read
    holds at most 500 documents (bench/erasure_scale.py measures 10,000 and the memory)."""
    from mirror_cli.stores.firebase.client import FirebaseClient
    from mirror_cli.stores.firebase.forget import BATCH

    core = make_core(store="firebase", now=lambda: NOW)
    store = core.store
    col = store._avatars(VICTIM)
    n = 1200
    for start in range(0, n, BATCH):
        batch = store.db.batch()
        for i in range(start, min(start + BATCH, n)):
            batch.set(col.document(f"a{i:05d}"), {"user_id": VICTIM, "created_at": "2026-01-01T00:00:00"})
        batch.commit()
    store.db.collection("users").document(OTHER).collection("avatars").document("keep").set({"user_id": OTHER})
    FirebaseClient.query_log = []
    try:
        out = core.erase_user(VICTIM)
        pages = [q for q in FirebaseClient.query_log if q._parent.id == "avatars"]
    finally:
        FirebaseClient.query_log = None
    assert out["removed"]["avatars"] == n
    assert len(pages) == 4 and all(q._limit == BATCH for q in pages)  # 500 + 500 + 200, then an empty page
    assert list(col.limit(1).stream()) == []
    assert store.db.collection("users").document(OTHER).collection("avatars").document("keep").get().exists


def test_the_nightly_command_names_the_erasures_it_finished(data_dir, make_core):
    """A crash right after the tombstone: `mirror evolve --due` finishes it and says so, by pseudonym."""
    from mirror_cli.models import Persona

    core = make_core(examples=False, now=lambda: NOW)
    core.import_users([Persona(id=VICTIM, name="M"), Persona(id=OTHER, name="K")])
    aliases = {uid: core.store.pseudonym(uid) for uid in (VICTIM, OTHER)}
    core.store.put_tombstone(VICTIM, NOW)
    flags = ["--data-dir", str(data_dir), "--now", NOW.isoformat()]
    human = CliRunner().invoke(app, ["evolve", "--due", "--any-hour", *flags])
    assert human.exit_code == 0, human.output
    said = " ".join(human.output.split())  # the totals sentence wraps at the terminal's width
    assert f"1 unfinished erasure(s) completed {aliases[VICTIM]}" in said and VICTIM not in said
    core.store.put_tombstone(OTHER, NOW)
    done = CliRunner().invoke(app, ["evolve", "--due", "--any-hour", "--json", *flags])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["summary"]["tick"]["erasures"] == {"finished": [aliases[OTHER]], "failed": 0}
    assert core.store.get_user(VICTIM) is None and core.store.get_user(OTHER) is None
    quiet = CliRunner().invoke(app, ["evolve", "--due", "--any-hour", *flags])
    assert quiet.exit_code == 0 and "erasure" not in quiet.output  # nothing left to finish

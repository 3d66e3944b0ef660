"""The cached answer of POST /avatar/generate: two reads by key, no write, the same JSON as the
full path; hits counted in memory and booked (periodically and at a graceful stop, none lost);
signed URLs reused only while more than half their lifetime is left; no global lock on the
local store. Real servers throughout: uvicorn, the Auth emulator, the Firestore and Storage
emulators (or SQLite), the loopback OpenAI server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import avatar_record
from serve_support import LiveServer, auth_env, bearer, new_user, serve_settings

from mirror_cli.clock import PinnedClock
from mirror_cli.core import Mirror
from mirror_cli.errors import StoreError
from mirror_cli.models import AvatarRecord, LedgerEvent, ModerationVerdict, Progress
from mirror_cli.server.app import create_app
from mirror_cli.server.cached import SignedUrls
from mirror_cli.server.hits import HitCounter
from mirror_cli.stores.base import Store
from mirror_cli.stores.local import LocalStore

API = "/api/v1"
PROGRESS = {"active_days": 31, "goals_completed": 4, "discovered_traits": ["curious"]}
WRITES = {"put_user", "set_progress", "put_avatar", "put_image", "record_event", "cache_put", "put_app_job"}


class CountingStore:
    """A Store that forwards every call to a real store and counts the calls by name."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.name = inner.name
        self.calls: Counter[str] = Counter()

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not callable(value):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[attr] += 1
            return value(*args, **kwargs)

        return counted


def test_the_counting_store_is_a_store_that_counts_and_forwards(tmp_path):
    inner = LocalStore(root=tmp_path / "s")
    store = CountingStore(inner)
    assert isinstance(store, Store)
    store.put_user(new_persona("c1"))
    assert store.get_user("c1").id == "c1" and store.get_user("nobody") is None
    assert inner.get_user("c1").id == "c1"  # it reached the real store
    assert store.calls == Counter({"get_user": 2, "put_user": 1})
    inner.close()


def new_persona(uid: str) -> Any:
    from mirror_cli.models import Persona

    return Persona(id=uid, name="Ada")


def _start(settings: Any) -> tuple[LiveServer, CountingStore]:
    core = Mirror(settings, owns_process=False)
    counting = CountingStore(core.store)
    core.__dict__["store"] = counting  # the core's store (a cached property) is the counting one
    return LiveServer(create_app(settings, core=core)), counting


def _documents_read(store: CountingStore) -> int:
    """The documents the store counted as read (its own operation counts, by machine day)."""
    ops: dict[tuple[str, str], int] = store._inner._ops  # type: ignore[attr-defined]
    return sum(n for (_, op), n in ops.items() if op == "reads")


def _body(uid: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": uid, "evolution_stage": "month", "progress_metrics": PROGRESS, **extra}


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_a_cached_generate_reads_two_documents_and_writes_nothing(store, serve_settings, auth_env, openai_env):
    server, counting = _start(serve_settings(store=store))
    svc = server.service
    try:
        uid, token = new_user(auth_env, counting)
        with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
            made = c.post("/avatar/generate", json=_body(uid))
            assert made.status_code == 200 and made.json()["status"] == "generated", made.text
            reads_before = _documents_read(counting)
            counting.calls.clear()
            hit = c.post("/avatar/generate", json=_body(uid))
            calls = dict(counting.calls)
            assert hit.status_code == 200, hit.text
            # one read of the profile, one indexed read of the newest good avatar; nothing else
            assert calls == {"get_user": 1, "latest_avatar": 1}, calls
            if store == "firebase":  # the store's own count of Firestore documents read
                assert _documents_read(counting) - reads_before == 2
            cached = hit.json()
            assert cached["status"] == "cached" and cached["cached"] is True and cached["cost"] == 0.0
            assert cached["avatar_id"] == made.json()["avatar_id"]
            assert cached["image_url"] == made.json()["image_url"]  # the signed URL was reused
            assert svc.hits.pending == 1  # counted, not written
            # fresh metrics of the same stage: stored (one write, as before), still no ledger line
            counting.calls.clear()
            more = {**PROGRESS, "active_days": 33}
            again = c.post("/avatar/generate", json=_body(uid, progress_metrics=more))
            assert again.json()["avatar_id"] == cached["avatar_id"]
            assert dict(counting.calls) == {"get_user": 1, "put_user": 1, "latest_avatar": 1}, counting.calls
            assert counting.get_user(uid).progress.active_days == 33
        # the same JSON as the full path's cached answer (run here directly, as a job would)
        full = asyncio.run(svc.generate(uid, "month", Progress.model_validate(more)))
        assert full.status == 200 and full.body["status"] == "cached"
        assert counting.calls["list_avatars"] >= 1 and counting.calls["record_event"] == 1  # the full path's cost
        drop = {"generation_time"}
        assert {k: v for k, v in cached.items() if k not in drop} == {
            k: v for k, v in full.body.items() if k not in drop
        }
        assert set(cached) == set(full.body)
    finally:
        server.stop()


def test_flagged_hidden_and_changed_looks_go_the_full_path(serve_settings, auth_env, openai_env):
    server, counting = _start(serve_settings(store="local"))
    svc = server.service
    try:
        uid, token = new_user(auth_env, counting)
        with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
            made = c.post("/avatar/generate", json=_body(uid)).json()
        record = counting.get_avatar(uid, made["avatar_id"])
        progress = Progress.model_validate(PROGRESS)

        def fast() -> dict[str, Any] | None:
            return asyncio.run(svc.cached.answer(uid, "month", progress))

        assert fast() is not None and fast()["avatar_id"] == record.id
        # a newer record of the target with the same look, flagged: never answered from the cache
        later = record.created_at + timedelta(seconds=1)
        counting.put_avatar(record.model_copy(update={"id": "flagged", "status": "flagged", "created_at": later}))
        assert fast() is None
        # ... or hidden by a report (the full path answers with the previous shown one)
        later += timedelta(seconds=1)
        counting.put_avatar(record.model_copy(update={"id": "hidden", "hidden_by": "r1", "created_at": later}))
        assert fast() is None
        # ... or whose image moderation has not said it may be shown (the check failed: pending)
        later += timedelta(seconds=1)
        pending = ModerationVerdict(verdict="pending", checked_at=later, detail="the check failed")
        counting.put_avatar(record.model_copy(update={"id": "pending", "moderation": pending, "created_at": later}))
        assert fast() is None
        later += timedelta(seconds=1)
        # a newer shown one is answered; one of another look (the user changed their appearance
        # since) is the full path's to decide
        clean = ModerationVerdict(verdict="clean", checked_at=later)
        counting.put_avatar(
            record.model_copy(
                update={"id": "newer-ok", "moderation": clean, "created_at": later + timedelta(seconds=1)}
            )
        )
        assert fast()["avatar_id"] == "newer-ok"
        counting.put_avatar(
            record.model_copy(update={"id": "other", "look_key": "0" * 64, "created_at": later + timedelta(seconds=2)})
        )
        assert fast() is None
        # a record made before looks were kept: the full path decides too
        counting.put_avatar(
            record.model_copy(update={"id": "legacy", "look_key": None, "created_at": later + timedelta(seconds=3)})
        )
        assert fast() is None
        # no profile, or a regenerate: not the cached path (the full path answers 409 / pays)
        assert asyncio.run(svc.cached.answer("nobody", "month", None)) is None
    finally:
        server.stop()


class LatestFails(CountingStore):
    """The counting store whose latest_avatar fails as a store outage does."""

    def __getattr__(self, attr: str) -> Any:
        if attr == "latest_avatar":
            self.calls[attr] += 1
            raise StoreError("The store did not answer.", "Check the network.")
        return super().__getattr__(attr)


def test_a_store_failure_on_the_cached_path_leaves_the_answer_to_the_full_path(serve_settings, auth_env, openai_env):
    settings = serve_settings(store="local")
    core = Mirror(settings, owns_process=False)
    failing = LatestFails(core.store)
    core.__dict__["store"] = failing
    server = LiveServer(create_app(settings, core=core))
    try:
        uid, token = new_user(auth_env, failing)
        with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
            assert c.post("/avatar/generate", json=_body(uid)).json()["status"] == "generated"
            failing.calls.clear()
            again = c.post("/avatar/generate", json=_body(uid))
        assert again.status_code == 200 and again.json()["status"] == "cached", again.text
        assert failing.calls["latest_avatar"] == 1 and failing.calls["list_avatars"] >= 1  # the full path answered
    finally:
        server.stop()


def _hits(store: Any) -> int:
    return sum(e.count for e in store.events() if e.kind == "cache_hit")


def test_hits_are_booked_periodically_and_at_a_graceful_stop(serve_settings, auth_env, openai_env):
    settings = serve_settings(store="local", serve_hits_flush_s=0.2)
    server, counting = _start(settings)
    uid, token = new_user(auth_env, counting)
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        assert c.post("/avatar/generate", json=_body(uid)).status_code == 200
        for _ in range(5):
            assert c.post("/avatar/generate", json=_body(uid)).json()["status"] == "cached"
    deadline = time.monotonic() + 30
    while _hits(counting) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _hits(counting) == 5 and server.service.hits.pending == 0
    lines = [e for e in counting.events() if e.kind == "cache_hit"]
    assert len(lines) < 5 and lines[0].avatar_id and lines[0].user_id == uid  # batched, per avatar
    server.stop()

    # a server that flushes hourly: what it counted reaches the ledger when it stops
    server, counting = _start(serve_settings(store="local", serve_hits_flush_s=3600))
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        for _ in range(7):
            assert c.post("/avatar/generate", json=_body(uid)).json()["status"] == "cached"
    assert server.service.hits.pending == 7 and _hits(counting) == 5
    server.stop()
    check = LocalStore(root=settings.data_dir)
    assert _hits(check) == 12
    check.close()


class FlakyLedger(LocalStore):
    """The local store whose first ledger write is stored and then fails (as a call that times
    out after the write reached the store)."""

    failures = 1

    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool:
        written = super().record_event(event, event_id)
        if self.failures:
            self.failures -= 1
            raise OSError("the answer was lost")
        return written


def _avatar(uid: str, aid: str) -> AvatarRecord:
    return avatar_record(uid, aid, "month", width=64, height=64)


def test_a_failed_flush_is_retried_under_the_same_ids_and_booked_once(tmp_path):
    store = FlakyLedger(root=tmp_path / "s")
    clock = PinnedClock(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))

    async def io(fn: Any, *args: Any) -> Any:
        return fn(*args)

    hits = HitCounter(lambda: store, io, clock)
    for _ in range(3):
        hits.add(_avatar("u1", "a1"), "month")
    hits.add(_avatar("u2", "b1"), "month")
    clock.advance(minutes=2)  # the next UTC day: a line of its own
    hits.add(_avatar("u1", "a1"), "month")
    assert hits.pending == 5
    assert asyncio.run(hits.flush()) == 0  # the first write failed (after reaching the store)
    assert hits.pending == 5
    hits.add(_avatar("u1", "a1"), "month")
    assert asyncio.run(hits.flush()) == 6 and hits.pending == 0
    assert asyncio.run(hits.flush()) == 0
    lines = [e for e in store.events() if e.kind == "cache_hit"]
    assert sum(e.count for e in lines) == 6  # the retried line was booked once
    per_day = Counter()
    for e in lines:
        per_day[(e.user_id, e.ts.date().isoformat())] += e.count
    assert per_day == {("u1", "2026-03-01"): 3, ("u2", "2026-03-01"): 1, ("u1", "2026-03-02"): 2}
    store.close()


def test_signed_urls_keep_at_least_half_their_lifetime():
    clock = PinnedClock(datetime(2026, 3, 1, tzinfo=UTC))
    signed: list[tuple[str, datetime]] = []

    def sign(ref: str) -> str:
        signed.append((ref, clock()))
        return f"https://signed/{ref}?n={len(signed)}"

    ttl = 3600
    urls = SignedUrls(sign, ttl, clock, max_entries=2)
    handed: list[tuple[str, datetime]] = []
    for _ in range(200):  # 200 requests 29 s apart, over more than one lifetime and a half
        handed.append((urls("a.webp"), clock()))
        clock.advance(seconds=29)
    when_signed = {f"https://signed/{ref}?n={i + 1}": at for i, (ref, at) in enumerate(signed)}
    for url, at in handed:
        left = when_signed[url] + timedelta(seconds=ttl) - at
        assert left > timedelta(seconds=ttl / 2), (url, left)
    assert 3 <= len(signed) <= 4  # reused in between: one signature per half lifetime
    # a clock set back (or a URL from the future) is signed again, never trusted
    clock.advance(seconds=-7200)
    before = len(signed)
    urls("a.webp")
    assert len(signed) == before + 1
    # bounded: the least recently signed go first
    urls("b.webp")
    urls("c.webp")
    urls("a.webp")
    assert len(signed) == before + 4


def test_the_local_store_has_no_global_lock(tmp_path):
    """A long statement on one thread does not hold up the cached path's reads on another."""
    store = LocalStore(root=tmp_path / "s")
    store.put_user(new_persona("u1"))
    store.put_avatar(_avatar("u1", "a1"))
    busy = threading.Event()
    done = threading.Event()

    def long_read() -> None:
        busy.set()
        store._q(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"
        )
        done.set()

    slow = threading.Thread(target=long_read)
    slow.start()
    busy.wait(5)
    time.sleep(0.05)
    for _ in range(20):
        assert store.get_user("u1") is not None
        assert store.latest_avatar("u1", "month", ("ok",)).id == "a1"
    finished_first = not done.is_set()
    slow.join(60)
    store.close()
    assert finished_first, "the reads waited for another thread's statement"

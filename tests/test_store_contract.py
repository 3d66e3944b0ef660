"""One contract, every store (the `store` fixture in conftest.py runs each test on each back-end)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import avatar_record

from mirror_cli.models import AvatarRecord, LedgerEvent, Persona, Progress, TokenUsage
from mirror_cli.stores.base import CacheEntry, Caps, DueQuery, JobState, LimitReached, RunInfo, Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _record(uid="u1", aid="a1", target="month", when=NOW) -> AvatarRecord:
    return avatar_record(uid, aid, target, stage="month", created_at=when)


def test_implements_protocol(store):
    assert isinstance(store, Store)


def test_users_roundtrip_and_pagination(store):
    for i in range(7):
        store.put_user(Persona(id=f"user{i:02d}", name=f"U{i}"))
    assert list(store.iter_user_ids(page_size=3)) == [f"user{i:02d}" for i in range(7)]
    store.set_progress("user03", Progress(active_days=42))
    assert store.get_user("user03").progress.active_days == 42
    assert store.get_user("nobody") is None


def test_the_due_query_keeps_to_the_stored_nightly_window(store):
    """next_window: 0 for a new user (the next tick decides), then what the tool sets; a query with
    opens_by returns only the due users whose window opened by then, and keeps the zone."""
    for i, zone in enumerate(["Asia/Tokyo", "Pacific/Chatham", None]):
        store.put_user(Persona(id=f"w{i}", name="W", timezone=zone, progress=Progress(active_days=9)))
        store.raise_latest_rank(f"w{i}", 0)
    q = DueQuery(latest_rank=0, min_active_days=7)
    assert sorted(p.id for p, _ in store.due_users([replace(q, opens_by=100)])) == ["w0", "w1", "w2"]
    store.set_next_window("w0", 1_000)
    store.set_next_window("w1", 2_000)
    store.set_next_window("nobody", 5)  # a missing user is ignored
    store.put_user(Persona(id="w1", name="W1", timezone="Pacific/Chatham", progress=Progress(active_days=9)))
    assert sorted(p.id for p, _ in store.due_users([replace(q, opens_by=999)])) == ["w2"]
    found = {p.id: p.timezone for p, _ in store.due_users([replace(q, opens_by=1_000)], (0, 4096))}
    assert found == {"w0": "Asia/Tokyo", "w2": None}
    assert len(list(store.due_users([replace(q, opens_by=2_000)]))) == 3  # a profile rewrite kept w1's
    assert len(list(store.due_users([q]))) == 3  # at any hour


def test_images_put_read_size_delete(store):
    ref, thumb = store.put_image("u1", "month-a1", b"IMG", b"TH")
    assert store.read_image(ref) == b"IMG" and store.read_image(thumb) == b"TH"
    assert store.image_size(ref) == 3
    store.delete_image(ref)
    assert store.image_size(ref) == 0


def test_avatar_records_are_idempotent_by_id(store):
    assert store.put_avatar(_record()) is True
    changed = _record().model_copy(update={"message": "other"})
    assert store.put_avatar(changed) is False
    assert store.get_avatar("u1", "a1").message == ""
    store.put_avatar(_record(aid="a2", when=NOW + timedelta(minutes=1)))
    assert [r.id for r in store.list_avatars("u1")] == ["a1", "a2"]
    assert store.get_avatar("u2", "a1") is None  # never across users
    store.delete_avatar("u1", "a1")
    assert [r.id for r in store.list_avatars("u1")] == ["a2"]


def test_latest_avatar_of_a_target_with_a_good_status(store):
    """The cached answer's one read: the newest record of the target among the given statuses,
    of this user only."""
    ok = ("ok", "flagged")
    assert store.latest_avatar("u1", "month", ok) is None
    store.put_avatar(_record(aid="a1"))
    store.put_avatar(_record(aid="a2", when=NOW + timedelta(minutes=1)))
    store.put_avatar(_record(aid="w1", target="week", when=NOW + timedelta(minutes=2)))
    hidden = _record(aid="a3", when=NOW + timedelta(minutes=3)).model_copy(update={"status": "degraded"})
    store.put_avatar(hidden)
    store.put_avatar(_record(uid="u2", aid="b1", when=NOW + timedelta(minutes=4)))
    assert store.latest_avatar("u1", "month", ok).id == "a2"  # not the newer degraded one
    assert store.latest_avatar("u1", "month", ("degraded",)).id == "a3"
    assert store.latest_avatar("u1", "week", ok).id == "w1"
    assert store.latest_avatar("u2", "month", ok).id == "b1"
    store.delete_avatar("u1", "a2")
    assert store.latest_avatar("u1", "month", ok).id == "a1"


def test_cache_is_per_user(store):
    store.cache_put(CacheEntry("u1", "key", "a1", NOW))
    assert store.cache_get("u1", "key").avatar_id == "a1"
    assert store.cache_get("u2", "key") is None
    assert [e.user_id for e in store.cache_entries()] == ["u1"]
    store.cache_delete("u1", "key")
    assert store.cache_get("u1", "key") is None


def test_ledger_idempotent_events_and_ranges(store):
    e = LedgerEvent(ts=NOW, user_id="u1", kind="generated", cost_usd=0.05, usage=TokenUsage(output_image_tokens=9))
    assert store.record_event(e, event_id="paid:u1:k") is True
    assert store.record_event(e, event_id="paid:u1:k") is False
    store.record_event(LedgerEvent(ts=NOW + timedelta(days=1), user_id="u2", kind="cache_hit"))
    assert len(store.events()) == 2
    assert [x.user_id for x in store.events(since=NOW + timedelta(hours=1))] == ["u2"]
    assert [x.kind for x in store.events(uid="u1")] == ["generated"]
    assert store.events(uid="u1")[0].usage.output_image_tokens == 9


def test_usage_sums_in_the_store_and_streams_the_ledger(store):
    for i in range(5):
        kind = "generated" if i % 2 == 0 else "failed"
        store.record_event(LedgerEvent(ts=NOW + timedelta(minutes=i), user_id=f"u{i % 2}", kind=kind, cost_usd=0.25))
    store.record_event(LedgerEvent(ts=NOW + timedelta(days=10), user_id="u0", kind="generated", cost_usd=1.0))
    assert store.month_paid_usd("2026-11") == pytest.approx(0.75)  # paid kinds only, this month only
    assert store.month_paid_usd("2026-12") == pytest.approx(1.0)
    assert store.month_paid_usd("2026-11", uid="u0") == pytest.approx(0.75)
    assert store.month_paid_usd("2026-11", uid="u1") == 0
    streamed = list(store.iter_events(NOW, NOW + timedelta(days=1)))
    assert [e.ts for e in streamed] == [NOW + timedelta(minutes=i) for i in range(5)]


def test_reservations_enforce_caps(store):
    caps = Caps(per_user_daily=2, system_daily=3, monthly_budget_usd=1.0)
    r1 = store.reserve("u1", "k1", 0.1, NOW, caps)
    store.reserve("u1", "k2", 0.1, NOW, caps)
    with pytest.raises(LimitReached) as e:
        store.reserve("u1", "k3", 0.1, NOW, caps)
    assert e.value.kind == "per_user_daily"
    store.reserve("u2", "k4", 0.1, NOW, caps)
    with pytest.raises(LimitReached) as e:
        store.reserve("u3", "k5", 0.1, NOW, caps)
    assert e.value.kind == "system_daily"
    store.release(r1)  # a released reservation frees its slot
    store.reserve("u3", "k5", 0.1, NOW, caps)
    with pytest.raises(LimitReached) as e:
        store.reserve("u9", "k6", 5.0, NOW + timedelta(days=1), caps)
    assert e.value.kind == "monthly_budget"


def test_settle_replaces_estimate_with_actual(store):
    caps = Caps(None, None, monthly_budget_usd=0.30)
    r = store.reserve("u1", "k1", 0.25, NOW, caps)
    with pytest.raises(LimitReached):
        store.reserve("u1", "k2", 0.10, NOW, caps)
    store.settle(r, 0.05)
    store.reserve("u1", "k2", 0.10, NOW, caps)


def test_a_settled_reservation_is_never_settled_or_released_twice_by_recovery(store):
    """``only_held`` (a crashed owner's reservation, which it may have settled before it died):
    once settled, a second settle or a release changes nothing on either store."""
    caps = Caps(None, 2, monthly_budget_usd=0.30)
    r = store.reserve("u1", "k1", 0.25, NOW, caps)
    store.settle(r, 0.20)
    store.settle(r, 0.05, only_held=True)  # counted once, at 0.20: 0.10 more does not fit
    store.release(r, only_held=True)  # nor does a release give its slot back
    with pytest.raises(LimitReached) as e:
        store.reserve("u1", "k2", 0.15, NOW, caps)
    assert e.value.kind == "monthly_budget"
    store.reserve("u1", "k2", 0.10, NOW, caps)
    with pytest.raises(LimitReached) as e:
        store.reserve("u1", "k3", 0.0, NOW, caps)
    assert e.value.kind == "system_daily"
    held = store.reserve("u2", "k4", 0.0, NOW + timedelta(days=1), caps)
    store.release(held, only_held=True)  # still held: released (its slot is free again)
    store.reserve("u2", "k5", 0.0, NOW + timedelta(days=1), caps)
    store.reserve("u2", "k6", 0.0, NOW + timedelta(days=1), caps)


def test_concurrent_reservations_never_overshoot(store):
    caps = Caps(per_user_daily=None, system_daily=None, monthly_budget_usd=1.0)

    def attempt(i: int) -> bool:
        try:
            store.reserve(f"u{i}", f"k{i}", 0.3, NOW, caps)
            return True
        except LimitReached:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(16)))
    # Never more than the cap. SQLite serialises (exactly 3); Firestore's increment + read-back may
    # back off under contention, and retries refusals that a re-read shows would fit.
    assert 1 <= sum(results) <= 3
    if store.name == "local":
        assert sum(results) == 3


def test_runs_and_job_states(store):
    run = RunInfo(id="r1", command="evolve", created_at=NOW, params={"due": True})
    store.create_run(run)
    store.put_job_state(JobState("r1", "u1.month", "u1", "month", "pending"))
    store.put_job_state(JobState("r1", "u1.month", "u1", "month", "done", "k", "a1"))
    store.put_job_state(JobState("r1", "u2.month", "u2", "month", "failed", detail="boom"))
    states = {s.job_id: s.state for s in store.job_states("r1")}
    assert states == {"u1.month": "done", "u2.month": "failed"}
    run.state, run.counts = "finished", {"generated": 1}
    store.update_run(run)
    assert store.get_run("r1").counts == {"generated": 1}
    assert [r.id for r in store.list_runs()] == ["r1"]


def test_op_counts_grow(store):
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    before = store.op_counts(day).get("writes", 0)
    store.put_user(Persona(id="x", name="X"))
    assert store.op_counts(day)["writes"] > before

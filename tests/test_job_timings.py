"""Every job measured: queue wait, provider latency, post-processing, store time and total are on
the avatar record and on its ledger line, in both stores (SQLite also as queryable columns)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from conftest import avatar_record

from mirror_cli.models import JobTimings, LedgerEvent
from mirror_cli.stores.local import MIGRATIONS, LocalStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LATENCY = 0.4  # the loopback API answers each image request this late


@pytest.fixture(params=["local", "firebase"])
def store_flags(request) -> dict[str, str]:
    if request.param == "firebase":
        request.getfixturevalue("firebase_env")
    return {"store": request.param}


def test_a_paid_job_stores_where_its_time_went(make_core, openai_env, fast_configs, store_flags):
    openai_env.latency = LATENCY
    core = make_core(
        provider="openai", base_url=openai_env.url, config_dir=fast_configs, now=lambda: NOW, **store_flags
    )
    outcome = core.generate(["demo"], "month").outcomes[0]
    assert outcome.status == "generated", outcome.reason

    stored = core.store.get_avatar("demo", outcome.record.id)
    t = stored.timings
    assert t is not None
    assert t.provider_s >= LATENCY  # the answer came no sooner than the server sent it
    assert t.queue_wait_s is not None and 0 <= t.queue_wait_s < 5
    assert t.post_process_s > 0 and t.store_s > 0
    # the parts fit inside the whole (the record is written after these figures are taken)
    assert t.total_s >= t.provider_s + t.post_process_s + t.store_s - 0.01

    paid = [e for e in core.store.iter_events(None, None, "demo") if e.kind == "generated"]
    assert len(paid) == 1 and paid[0].timings == t
    # the run's report carries the whole job, its record writes included
    assert outcome.timings.total_s >= t.total_s and outcome.timings.store_s >= t.store_s

    again = core.generate(["demo"], "month").outcomes[0]
    assert again.status == "cached"
    hit = [e for e in core.store.iter_events(None, None, "demo") if e.kind == "cache_hit"]
    assert len(hit) == 1 and hit[0].timings is not None
    assert hit[0].timings.provider_s is None  # a cache hit never calls the provider
    assert hit[0].timings.total_s < LATENCY


def test_sqlite_keeps_the_figures_as_columns(make_core, openai_env, fast_configs, data_dir):
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs, now=lambda: NOW)
    outcome = core.generate(["demo"], "month").outcomes[0]
    db = sqlite3.connect(data_dir / "mirror.db")
    (ledger_total, ledger_provider) = db.execute(
        "SELECT total_s, provider_s FROM ledger WHERE kind = 'generated'"
    ).fetchone()
    (avatar_total,) = db.execute("SELECT total_s FROM avatars WHERE id = ?", (outcome.record.id,)).fetchone()
    db.close()
    assert ledger_total == avatar_total == outcome.record.timings.total_s
    assert ledger_provider == outcome.record.timings.provider_s > 0


def test_migration_keeps_older_rows_readable(tmp_path):
    """A store made before jobs were measured opens, migrates, and reads its rows back as unmeasured."""
    root = tmp_path / "old"
    root.mkdir()
    db = sqlite3.connect(root / "mirror.db", isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        db.executescript(script)
        db.execute(f"PRAGMA user_version={number}")
    old = avatar_record("u1", "a0", "month", width=8, height=8, quality="low", created_at=NOW)
    body = old.model_dump_json(exclude={"timings"})
    db.execute("INSERT INTO avatars VALUES (?, ?, ?, ?, ?)", ("a0", "u1", "month", NOW.isoformat(), body))
    db.close()

    store = LocalStore(root=root)
    try:
        assert store.get_avatar("u1", "a0").timings is None
        timed = JobTimings(provider_s=1.5, total_s=2.0)
        store.record_event(LedgerEvent(ts=NOW, user_id="u1", kind="generated", timings=timed))
        assert next(iter(store.iter_events(None, None, "u1"))).timings == timed
    finally:
        store.close()
    db = sqlite3.connect(root / "mirror.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("SELECT provider_s, total_s FROM ledger").fetchone() == (1.5, 2.0)
    db.close()

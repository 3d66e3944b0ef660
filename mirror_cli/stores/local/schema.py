"""The local store's SQLite schema: numbered migrations (``PRAGMA user_version`` counts the ones
applied) and the statements several concerns share."""

from __future__ import annotations

from datetime import UTC, datetime

from ...models import JobTimings

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE users (uid TEXT PRIMARY KEY, persona TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE avatars (
        id TEXT PRIMARY KEY, uid TEXT NOT NULL, target TEXT NOT NULL, created_at TEXT NOT NULL,
        record TEXT NOT NULL);
    CREATE INDEX avatars_uid ON avatars(uid, created_at);
    CREATE TABLE cache (
        uid TEXT NOT NULL, request_key TEXT NOT NULL, avatar_id TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (uid, request_key));
    CREATE TABLE ledger (
        event_id TEXT PRIMARY KEY, ts TEXT NOT NULL, uid TEXT NOT NULL, kind TEXT NOT NULL, event TEXT NOT NULL);
    CREATE INDEX ledger_ts ON ledger(ts);
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY, uid TEXT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL,
        amount REAL NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE INDEX reservations_day ON reservations(day);
    CREATE INDEX reservations_month ON reservations(month);
    CREATE TABLE runs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, info TEXT NOT NULL);
    CREATE TABLE run_jobs (
        run_id TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL, info TEXT NOT NULL,
        PRIMARY KEY (run_id, job_id));
    CREATE TABLE ops (day TEXT NOT NULL, op TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (day, op));
    """,
    # 2: the due index (latest stage rank, shard bucket, the app's active days), filled for
    # existing users by the first due run (Mirror.reindex_due)
    """
    ALTER TABLE users ADD COLUMN latest_rank INTEGER;
    ALTER TABLE users ADD COLUMN shard INTEGER;
    ALTER TABLE users ADD COLUMN active_days INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET active_days = COALESCE(json_extract(persona, '$.progress.active_days'), 0);
    CREATE INDEX users_due ON users(latest_rank, active_days, shard);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta(key, value) SELECT 'due_index', '1' WHERE NOT EXISTS (SELECT 1 FROM users);
    """,
    # 3: job claims (one request in flight at a time across processes)
    """
    CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, lease_until TEXT NOT NULL, body TEXT NOT NULL);
    """,
    # 4: designers' reviews of fallback assets and flagged avatars (stores/local/reviews.py)
    """
    CREATE TABLE reviews (kind TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (kind, key));
    """,
    # 5: where each job's time went (models.JobTimings), as columns an operator can query with
    # sqlite3 (e.g. p95 of total_s); the JSON body carries the same figures
    """
    ALTER TABLE ledger ADD COLUMN queue_wait_s REAL;
    ALTER TABLE ledger ADD COLUMN provider_s REAL;
    ALTER TABLE ledger ADD COLUMN post_process_s REAL;
    ALTER TABLE ledger ADD COLUMN store_s REAL;
    ALTER TABLE ledger ADD COLUMN total_s REAL;
    ALTER TABLE avatars ADD COLUMN queue_wait_s REAL;
    ALTER TABLE avatars ADD COLUMN provider_s REAL;
    ALTER TABLE avatars ADD COLUMN post_process_s REAL;
    ALTER TABLE avatars ADD COLUMN store_s REAL;
    ALTER TABLE avatars ADD COLUMN total_s REAL;
    """,
    # 6: each user's nightly window (the UTC epoch second at which the window they are next to be
    # served in opens; 0: not looked at yet, the next tick decides), queried with the due fields
    """
    ALTER TABLE users ADD COLUMN next_window INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX users_window ON users(latest_rank, active_days, next_window, shard);
    UPDATE meta SET value = '2' WHERE key = 'due_index' AND value = '1';
    """,
    # 7: the avatar each user chose to show, one row per choice (stores/local/selections.py)
    """
    CREATE TABLE selections (uid TEXT NOT NULL, at TEXT NOT NULL, avatar_id TEXT NOT NULL, stage TEXT NOT NULL,
        target TEXT NOT NULL);
    CREATE INDEX selections_uid ON selections(uid, at);
    CREATE INDEX selections_at ON selections(at);
    """,
    # 8: the app's slow requests (answered 202), readable by every process on this store
    """
    CREATE TABLE app_jobs (id TEXT PRIMARY KEY, body TEXT NOT NULL);
    """,
    # 9: the embedded job queue (stores/local/queue.py): Pub/Sub's semantics on one SQLite file
    """
    CREATE TABLE queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        ordering_key TEXT NOT NULL, attributes TEXT NOT NULL, body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, visible_at REAL NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'ready');
    CREATE INDEX queue_ready ON queue(state, visible_at);
    CREATE INDEX queue_order ON queue(ordering_key, state, seq);
    """,
    # 10: reports on avatars (stores/local/reports.py) and each user's reports per day (the rate limit)
    """
    CREATE TABLE reports (id TEXT PRIMARY KEY, uid TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
        body TEXT NOT NULL);
    CREATE INDEX reports_status ON reports(status, created_at);
    CREATE INDEX reports_uid ON reports(uid, created_at);
    CREATE INDEX reports_created ON reports(created_at);
    CREATE TABLE report_quota (uid TEXT NOT NULL, day TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (uid, day));
    """,
]

TIMING_COLUMNS = ("queue_wait_s", "provider_s", "post_process_s", "store_s", "total_s")


def timing_values(timings: JobTimings | None) -> tuple[float | None, ...]:
    return tuple(getattr(timings, c) if timings else None for c in TIMING_COLUMNS)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()

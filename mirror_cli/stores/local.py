"""The embedded default store: one SQLite file (numbered migrations) plus an image folder."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from ..models import AvatarRecord, LedgerEvent, Persona, Progress, validate_user_id
from .base import (
    SHARD_BUCKETS,
    CacheEntry,
    Caps,
    Claim,
    ClaimResult,
    DueQuery,
    JobState,
    LimitReached,
    Reservation,
    RunInfo,
    shard_bucket,
)
from .local_reviews import LocalReviews
from .local_selections import LocalSelections

if TYPE_CHECKING:
    from ..settings import Settings

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
    # 4: designers' reviews of fallback assets and flagged avatars (stores/local_reviews.py)
    """
    CREATE TABLE reviews (kind TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (kind, key));
    """,
    # 5: the avatar each user chose to show, one row per choice (stores/local_selections.py)
    """
    CREATE TABLE selections (uid TEXT NOT NULL, at TEXT NOT NULL, avatar_id TEXT NOT NULL, stage TEXT NOT NULL,
        target TEXT NOT NULL);
    CREATE INDEX selections_uid ON selections(uid, at);
    CREATE INDEX selections_at ON selections(at);
    """,
]

# Reservations that count against caps: settled ones, and held ones that are not stale.
_USER_DAY_SQL = """SELECT COUNT(*) FROM reservations WHERE day = ? AND uid = ?
    AND (state = 'settled' OR (state = 'held' AND created_at >= ?))"""
_SYSTEM_DAY_SQL = """SELECT COUNT(*) FROM reservations WHERE day = ?
    AND (state = 'settled' OR (state = 'held' AND created_at >= ?))"""
_MONTH_SPENT_SQL = """SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE month = ?
    AND (state = 'settled' OR (state = 'held' AND created_at >= ?))"""

# A held reservation older than this is a crashed job's: it no longer counts against caps.
STALE_RESERVATION = timedelta(hours=2)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


class LocalStore(LocalReviews, LocalSelections):
    name = "local"

    def __init__(self, settings: Settings | None = None, root: Path | None = None) -> None:
        self.root = Path(root or (settings.data_dir if settings else Path("mirror-data")))
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._ops: dict[tuple[str, str], int] = {}
        if (self.root / "mirror.db").exists():
            self._open()
        elif self.root.exists() and not self.root.is_dir():
            raise StoreError(
                f"The data directory {self.root} is a file, not a folder.",
                "Pass a folder with --data-dir / MIRROR_DATA_DIR.",
            )
        elif self.root.exists() and not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            raise StoreError(
                f"The data directory {self.root} cannot be read or written.",
                "Fix its permissions, or pass another folder with --data-dir / MIRROR_DATA_DIR.",
            )

    def _open(self) -> sqlite3.Connection:
        """Open (creating on first write) the folder and the database. Reads before any write
        find an empty store and create nothing, so bad input never leaves files behind."""
        if self._db is not None:
            return self._db
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)
            (self.root / "avatars").mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"The data directory {self.root} cannot be used: {exc.strerror or exc}.",
                "Pass a writable folder with --data-dir or MIRROR_DATA_DIR.",
            ) from exc
        try:
            db = sqlite3.connect(self.root / "mirror.db", timeout=30, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            # WAL + NORMAL: committed data survives a crash of the process (the paid image is in
            # the spool anyway); only a power cut can lose the last transactions.
            db.execute("PRAGMA synchronous=NORMAL")
            self._db = db
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db = None
            raise StoreError(
                f"The database {self.root / 'mirror.db'} cannot be opened: {exc}.",
                "Move the damaged file aside or point --data-dir elsewhere.",
            ) from exc
        return db

    # ----------------------------------------------------------------------------- plumbing
    def _migrate(self) -> None:
        assert self._db is not None
        with self._lock:
            (current,) = self._db.execute("PRAGMA user_version").fetchone()
            for number, script in enumerate(MIGRATIONS, start=1):
                if number > current:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        for statement in script.split(";"):
                            if statement.strip():
                                self._db.execute(statement)
                        self._db.execute(f"PRAGMA user_version={number}")
                        self._db.execute("COMMIT")
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise

    def _q(self, sql: str, args: tuple[Any, ...] = (), op: str = "reads") -> list[Any]:
        with self._lock:
            if self._db is None and op == "reads":
                return []
            rows = self._open().execute(sql, args).fetchall()
            self._count(op, max(1, len(rows)) if op == "reads" else 1)
            return rows

    def _count(self, op: str, n: int = 1) -> None:
        """Operation counts stay in memory and reach the database once, when the store closes
        (a read never writes)."""
        key = (datetime.now(UTC).strftime("%Y-%m-%d"), op)
        with self._lock:
            self._ops[key] = self._ops.get(key, 0) + n

    def flush_ops(self) -> None:
        with self._lock:
            pending, self._ops = self._ops, {}
            if not pending or self._db is None:
                return  # nothing was written: a read-only command leaves no database behind
            self._db.executemany(
                "INSERT INTO ops(day, op, n) VALUES (?, ?, ?) ON CONFLICT(day, op) DO UPDATE SET n = n + excluded.n",
                [(day, op, n) for (day, op), n in pending.items()],
            )

    def close(self) -> None:
        with self._lock:
            self.flush_ops()
            if self._db is not None:
                self._db.close()
                self._db = None

    # -------------------------------------------------------------------------------- users
    def iter_user_ids(self, page_size: int = 500) -> Iterator[str]:
        last = ""
        while True:
            rows = self._q("SELECT uid FROM users WHERE uid > ? ORDER BY uid LIMIT ?", (last, page_size))
            if not rows:
                return
            for (uid,) in rows:
                yield uid
            last = rows[-1][0]

    def get_user(self, uid: str) -> Persona | None:
        rows = self._q("SELECT persona FROM users WHERE uid = ?", (validate_user_id(uid),))
        return Persona.model_validate_json(rows[0][0]) if rows else None

    def put_user(self, persona: Persona) -> None:
        """Insert or replace the profile; a new user enters the due index with no stage yet."""
        self._q(
            "INSERT INTO users(uid, persona, updated_at, latest_rank, shard, active_days) VALUES (?, ?, ?, -1, ?, ?) "
            "ON CONFLICT(uid) DO UPDATE SET persona = excluded.persona, updated_at = excluded.updated_at, "
            "shard = excluded.shard, active_days = excluded.active_days",
            (
                validate_user_id(persona.id),
                persona.model_dump_json(),
                _iso(datetime.now(UTC)),
                shard_bucket(persona.id),
                persona.progress.active_days,
            ),
            op="writes",
        )

    def due_users(
        self, queries: list[DueQuery], buckets: tuple[int, int] = (0, SHARD_BUCKETS), page_size: int = 500
    ) -> Iterator[tuple[Persona, int]]:
        for q in queries:
            last = ""
            while True:
                rows = self._q(
                    "SELECT uid, persona FROM users WHERE latest_rank = ? AND active_days >= ? "
                    "AND shard >= ? AND shard < ? AND uid > ? ORDER BY uid LIMIT ?",
                    (q.latest_rank, q.min_active_days, buckets[0], buckets[1], last, page_size),
                )
                for _, persona in rows:
                    yield Persona.model_validate_json(persona), q.latest_rank
                if len(rows) < page_size:
                    break
                last = rows[-1][0]

    def raise_latest_rank(self, uid: str, rank: int) -> None:
        self._q(
            "UPDATE users SET latest_rank = MAX(COALESCE(latest_rank, -1), ?), shard = ? WHERE uid = ?",
            (rank, shard_bucket(uid), validate_user_id(uid)),
            op="writes",
        )

    def due_index_version(self) -> int:
        rows = self._q("SELECT value FROM meta WHERE key = 'due_index'")
        return int(rows[0][0]) if rows else 0

    def set_due_index_version(self, version: int) -> None:
        self._q(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('due_index', ?)",
            (str(version),),
            op="writes",
        )

    def set_progress(self, uid: str, progress: Progress) -> None:
        with self._lock:
            persona = self.get_user(uid)
            if persona is None:
                raise StoreError(f"User {uid!r} is not in the store.", "Add the user first (mirror users add).")
            self.put_user(persona.model_copy(update={"progress": progress}))

    # ------------------------------------------------------------------------------- images
    def _path(self, ref: str) -> Path:
        path = (self.root / ref).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StoreError(f"Image reference {ref!r} points outside the data directory.", "This is a bug.")
        return path

    def put_image(self, uid: str, name: str, data: bytes, thumb: bytes | None) -> tuple[str, str | None]:
        validate_user_id(uid)
        self._open()
        folder = self.root / "avatars" / uid
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        refs: list[str | None] = []
        for suffix, blob in ((".webp", data), (".thumb.webp", thumb)):
            if blob is None:
                refs.append(None)
                continue
            final = folder / f"{name}{suffix}"
            tmp = final.with_suffix(final.suffix + f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, final)
            refs.append(str(final.relative_to(self.root)))
        with self._lock:
            self._count("writes")
            self._count("bytes_stored", len(data) + len(thumb or b""))
        return str(refs[0]), refs[1]

    def read_image(self, ref: str) -> bytes:
        with self._lock:
            self._count("reads")
        return self._path(ref).read_bytes()

    def image_url(self, ref: str) -> str:
        return self._path(ref).as_uri()

    def image_size(self, ref: str) -> int:
        path = self._path(ref)
        return path.stat().st_size if path.exists() else 0

    def delete_image(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)
        with self._lock:
            self._count("deletes")

    # ------------------------------------------------------------------------------ avatars
    def put_avatar(self, record: AvatarRecord) -> bool:
        """Idempotent by id: returns False when the record already existed (it is left as is)."""
        with self._lock:
            cur = self._open().execute(
                "INSERT OR IGNORE INTO avatars(id, uid, target, created_at, record) VALUES (?, ?, ?, ?, ?)",
                (record.id, record.user_id, record.target, _iso(record.created_at), record.model_dump_json()),
            )
            self._count("writes")
            return cur.rowcount == 1

    def get_avatar(self, uid: str, avatar_id: str) -> AvatarRecord | None:
        rows = self._q("SELECT record FROM avatars WHERE uid = ? AND id = ?", (uid, avatar_id))
        return AvatarRecord.model_validate_json(rows[0][0]) if rows else None

    def list_avatars(self, uid: str) -> list[AvatarRecord]:
        rows = self._q("SELECT record FROM avatars WHERE uid = ? ORDER BY created_at, id", (uid,))
        return [AvatarRecord.model_validate_json(r[0]) for r in rows]

    def delete_avatar(self, uid: str, avatar_id: str) -> None:
        self._q("DELETE FROM avatars WHERE uid = ? AND id = ?", (uid, avatar_id), op="deletes")

    # -------------------------------------------------------------------------------- cache
    def cache_get(self, uid: str, request_key: str) -> CacheEntry | None:
        rows = self._q("SELECT avatar_id, created_at FROM cache WHERE uid = ? AND request_key = ?", (uid, request_key))
        if not rows:
            return None
        return CacheEntry(uid, request_key, rows[0][0], datetime.fromisoformat(rows[0][1]))

    def cache_put(self, entry: CacheEntry) -> None:
        self._q(
            "INSERT OR REPLACE INTO cache(uid, request_key, avatar_id, created_at) VALUES (?, ?, ?, ?)",
            (entry.user_id, entry.request_key, entry.avatar_id, _iso(entry.created_at)),
            op="writes",
        )

    def cache_entries(self, uid: str | None = None) -> list[CacheEntry]:
        sql = "SELECT uid, request_key, avatar_id, created_at FROM cache"
        rows = (
            self._q(sql + " WHERE uid = ? ORDER BY created_at", (uid,))
            if uid
            else self._q(sql + " ORDER BY created_at")
        )
        return [CacheEntry(r[0], r[1], r[2], datetime.fromisoformat(r[3])) for r in rows]

    def cache_delete(self, uid: str, request_key: str) -> None:
        self._q("DELETE FROM cache WHERE uid = ? AND request_key = ?", (uid, request_key), op="deletes")

    # ------------------------------------------------------------------------------- ledger
    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool:
        """Append an event; an event_id makes the write idempotent (returns False on a repeat)."""
        with self._lock:
            cur = self._open().execute(
                "INSERT OR IGNORE INTO ledger(event_id, ts, uid, kind, event) VALUES (?, ?, ?, ?, ?)",
                (
                    event_id or uuid.uuid4().hex,
                    _iso(event.ts),
                    event.user_id,
                    event.kind,
                    event.model_dump_json(),
                ),
            )
            self._count("writes")
            return cur.rowcount == 1

    def events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> list[LedgerEvent]:
        return list(self.iter_events(since, until, uid))

    def iter_events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None, page: int = 1000
    ) -> Iterator[LedgerEvent]:
        end, who = (_iso(until) if until else None), uid
        last_ts, last_id = (_iso(since) if since else ""), ""
        while True:
            rows = self._q(
                # ts >= ? first: the index on ts starts each page where the last one ended
                "SELECT ts, event_id, event FROM ledger WHERE ts >= ? AND (ts > ? OR event_id >= ?) "
                "AND (? IS NULL OR ts < ?) AND (? IS NULL OR uid = ?) ORDER BY ts, event_id LIMIT ?",
                (last_ts, last_ts, last_id, end, end, who, who, page),
            )
            for _, _, event in rows:
                yield LedgerEvent.model_validate_json(event)
            if len(rows) < page:
                return
            last_ts, last_id = rows[-1][0], rows[-1][1] + "\x00"  # strictly after the last one

    def month_paid_usd(self, month: str, uid: str | None = None) -> float:
        sql = (
            "SELECT COALESCE(SUM(json_extract(event, '$.cost_usd')), 0) FROM ledger "
            "WHERE kind IN ('generated', 'spool_ingest', 'may_have_billed') AND ts >= ? AND ts < ?"
        )
        year, mon = (int(x) for x in month.split("-"))
        start = f"{year:04d}-{mon:02d}-01"
        end = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}-01"
        args: tuple[Any, ...] = (start, end)
        if uid:
            sql += " AND uid = ?"
            args = (*args, uid)
        rows = self._q(sql, args)
        return float(rows[0][0]) if rows else 0.0

    def reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation:
        """Atomically check every cap and hold ``amount``; raises LimitReached without holding anything."""
        day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        fresh = _iso(now - STALE_RESERVATION)
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                if caps.per_user_daily is not None:
                    (n,) = db.execute(
                        _USER_DAY_SQL,
                        (day, uid, fresh),
                    ).fetchone()
                    if n >= caps.per_user_daily:
                        raise LimitReached(
                            "per_user_daily", f"user {uid} reached {caps.per_user_daily} generations today"
                        )
                if caps.system_daily is not None:
                    (n,) = db.execute(_SYSTEM_DAY_SQL, (day, fresh)).fetchone()
                    if n >= caps.system_daily:
                        raise LimitReached("system_daily", f"the system reached {caps.system_daily} generations today")
                if caps.monthly_budget_usd is not None:
                    (spent,) = db.execute(
                        _MONTH_SPENT_SQL,
                        (month, fresh),
                    ).fetchone()
                    if spent + amount > caps.monthly_budget_usd + 1e-9:
                        raise LimitReached(
                            "monthly_budget",
                            f"the monthly budget of ${caps.monthly_budget_usd:.2f} would be exceeded "
                            f"(${spent:.4f} committed, this job needs ${amount:.4f})",
                        )
                res = Reservation(uuid.uuid4().hex, uid, amount, day, month)
                db.execute(
                    "INSERT INTO reservations(id, uid, day, month, amount, state, created_at) "
                    "VALUES (?, ?, ?, ?, ?, 'held', ?)",
                    (res.id, uid, day, month, amount, _iso(now)),
                )
                self._count("writes")
                db.execute("COMMIT")
                return res
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def settle(self, reservation: Reservation, actual: float) -> None:
        self._q(
            "UPDATE reservations SET state = 'settled', amount = ? WHERE id = ?",
            (actual, reservation.id),
            op="writes",
        )

    def release(self, reservation: Reservation) -> None:
        self._q("UPDATE reservations SET state = 'released' WHERE id = ?", (reservation.id,), op="writes")

    # --------------------------------------------------------------------------------- runs
    def create_run(self, run: RunInfo) -> None:
        self._q(
            "INSERT INTO runs(id, created_at, info) VALUES (?, ?, ?)",
            (run.id, _iso(run.created_at), json.dumps(run.to_dict())),
            op="writes",
        )

    def update_run(self, run: RunInfo) -> None:
        self._q("UPDATE runs SET info = ? WHERE id = ?", (json.dumps(run.to_dict()), run.id), op="writes")

    def get_run(self, run_id: str) -> RunInfo | None:
        rows = self._q("SELECT info FROM runs WHERE id = ?", (run_id,))
        return RunInfo.from_dict(json.loads(rows[0][0])) if rows else None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        rows = self._q("SELECT info FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [RunInfo.from_dict(json.loads(r[0])) for r in rows]

    def put_job_state(self, state: JobState) -> None:
        self._q(
            "INSERT OR REPLACE INTO run_jobs(run_id, job_id, state, info) VALUES (?, ?, ?, ?)",
            (state.run_id, state.job_id, state.state, json.dumps(state.to_dict())),
            op="writes",
        )

    def job_states(self, run_id: str) -> list[JobState]:
        rows = self._q("SELECT info FROM run_jobs WHERE run_id = ? ORDER BY job_id", (run_id,))
        return [JobState.from_dict(run_id, json.loads(r[0])) for r in rows]

    # ------------------------------------------------------------------------------- claims
    def claim(self, claim: Claim, now: datetime, steal_from: str | None = None) -> ClaimResult:
        """One SQLite transaction (BEGIN IMMEDIATE: a write lock across processes)."""
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT body FROM claims WHERE key = ?", (claim.key,)).fetchone()
                previous = Claim.from_dict(json.loads(row[0])) if row else None
                if previous is not None and not (
                    previous.lease_until < now or previous.owner == claim.owner or previous.owner == steal_from
                ):
                    db.execute("COMMIT")
                    self._count("reads")
                    return ClaimResult(False, previous)
                db.execute(
                    "INSERT OR REPLACE INTO claims(key, owner, lease_until, body) VALUES (?, ?, ?, ?)",
                    (claim.key, claim.owner, _iso(claim.lease_until), json.dumps(claim.to_dict())),
                )
                self._count("writes")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        taken = previous if previous is not None and previous.owner != claim.owner else None
        return ClaimResult(True, claim, taken)

    def renew_claim(self, key: str, owner: str, lease_until: datetime, info: dict[str, Any] | None = None) -> bool:
        with self._lock:
            db = self._open()
            row = db.execute("SELECT body FROM claims WHERE key = ? AND owner = ?", (key, owner)).fetchone()
            if row is None:
                return False
            body = json.loads(row[0])
            body["lease_until"] = _iso(lease_until)
            if info:
                body["info"] = {**body.get("info", {}), **info}
            cur = db.execute(
                "UPDATE claims SET lease_until = ?, body = ? WHERE key = ? AND owner = ?",
                (_iso(lease_until), json.dumps(body), key, owner),
            )
            self._count("writes")
            return cur.rowcount == 1

    def get_claim(self, key: str) -> Claim | None:
        rows = self._q("SELECT body FROM claims WHERE key = ?", (key,))
        return Claim.from_dict(json.loads(rows[0][0])) if rows else None

    def release_claim(self, key: str, owner: str | None = None) -> None:
        if owner is None:
            self._q("DELETE FROM claims WHERE key = ?", (key,), op="writes")
        else:
            self._q("DELETE FROM claims WHERE key = ? AND owner = ?", (key, owner), op="writes")

    # --------------------------------------------------------------------------- accounting
    def op_counts(self, day: str) -> dict[str, int]:
        with self._lock:
            sql = "SELECT op, n FROM ops WHERE day = ?"
            counts: dict[str, int] = dict(self._db.execute(sql, (day,)).fetchall()) if self._db else {}
            for (d, op), n in self._ops.items():
                if d == day:
                    counts[op] = counts.get(op, 0) + n
        return counts

"""What every concern of the local store shares: the data folder, the SQLite file (WAL, migrated
once per process), one connection per thread, write transactions and operation counts.

No lock serialises the calls: each thread has its own connection and WAL lets readers run next
to the one writer. What must be atomic across threads and processes runs in ``transaction()``
(``BEGIN IMMEDIATE``: SQLite's write lock, waited for up to the busy timeout); every other call
is one statement, atomic on its own. Only the in-memory operation counts and opening the file
take a short lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import StoreError
from .schema import MIGRATIONS

if TYPE_CHECKING:
    from ...settings import Settings

BUSY_TIMEOUT_S = 30


class _Connection(sqlite3.Connection):
    """A connection the store can hold weakly: a thread that ends takes its connection with it."""


class LocalDb:
    """The folder, the file and the connections every concern uses."""

    name = "local"

    def __init__(self, settings: Settings | None = None, root: Path | None = None) -> None:
        self.root = Path(root or (settings.data_dir if settings else Path("mirror-data")))
        self._open_lock = threading.Lock()  # opening and closing only
        self._ops_lock = threading.Lock()  # the in-memory counts only
        self._local = threading.local()
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self._ready = False  # the folder exists and the file is migrated
        self._closed = False  # close() was called: reads find nothing until the next write
        self._ops: dict[tuple[str, str], int] = {}
        # The folder is checked before anything inside it is looked at: in a folder it may not
        # enter, even asking whether mirror.db exists is a PermissionError.
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(
                f"The data directory {self.root} is a file, not a folder.",
                "Pass a folder with --data-dir / MIRROR_DATA_DIR.",
            )
        if self.root.exists() and not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            raise StoreError(
                f"The data directory {self.root} cannot be read or written.",
                "Fix its permissions, or pass another folder with --data-dir / MIRROR_DATA_DIR.",
            )
        if (self.root / "mirror.db").exists():
            self._open()

    # ----------------------------------------------------------------------------- plumbing
    def _open(self) -> sqlite3.Connection:
        """This thread's connection, opening (creating on first write) the folder and the
        database first. Reads before any write find an empty store and create nothing, so bad
        input never leaves files behind."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        with self._open_lock:
            if not self._ready:
                self._prepare_folder()
            db = self._connect()
            if not self._ready:
                self._migrate(db)
                self._ready = True
            self._connections.add(db)
        self._local.db = db
        return db

    def _prepare_folder(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)
            (self.root / "avatars").mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(
                f"The data directory {self.root} cannot be used: {exc.strerror or exc}.",
                "Pass a writable folder with --data-dir or MIRROR_DATA_DIR.",
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        path = self.root / "mirror.db"
        try:
            db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None, factory=_Connection
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            # WAL + NORMAL: committed data survives a crash of the process (the paid image is in
            # the spool anyway); only a power cut can lose the last transactions.
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"The database {path} cannot be opened: {exc}.",
                "Move the damaged file aside or point --data-dir elsewhere.",
            ) from exc
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        try:
            (current,) = db.execute("PRAGMA user_version").fetchone()
            for number, script in enumerate(MIGRATIONS, start=1):
                if number > current:
                    with self._transaction_on(db):
                        # read again under the write lock: another process (or the queue's own
                        # connection in this one) may have applied it since
                        (current,) = db.execute("PRAGMA user_version").fetchone()
                        if number <= current:
                            continue
                        for statement in script.split(";"):
                            if statement.strip():
                                db.execute(statement)
                        db.execute(f"PRAGMA user_version={number}")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(
                f"The database {self.root / 'mirror.db'} cannot be opened: {exc}.",
                "Move the damaged file aside or point --data-dir elsewhere.",
            ) from exc

    @staticmethod
    @contextmanager
    def _transaction_on(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection: SQLite's write lock across threads
        and processes, committed on success and rolled back on any exception."""
        with self._transaction_on(self._open()) as db:
            yield db

    def _q(self, sql: str, args: tuple[Any, ...] = (), op: str = "reads") -> list[Any]:
        """One statement on this thread's connection; a read of a store never written is empty."""
        if not self._ready and op == "reads" and (self._closed or not (self.root / "mirror.db").exists()):
            return []  # (another process may have created it since this store was opened)
        rows = self._open().execute(sql, args).fetchall()
        self._count(op, max(1, len(rows)) if op == "reads" else 1)
        return rows

    def _count(self, op: str, n: int = 1) -> None:
        """Operation counts stay in memory and reach the database once, when the store closes
        (a read never writes)."""
        key = (datetime.now(UTC).strftime("%Y-%m-%d"), op)
        with self._ops_lock:
            self._ops[key] = self._ops.get(key, 0) + n

    def flush_ops(self) -> None:
        with self._ops_lock:
            pending, self._ops = self._ops, {}
        if not pending or not self._ready:
            return  # nothing was written: a read-only command leaves no database behind
        self._open().executemany(
            "INSERT INTO ops(day, op, n) VALUES (?, ?, ?) ON CONFLICT(day, op) DO UPDATE SET n = n + excluded.n",
            [(day, op, n) for (day, op), n in pending.items()],
        )

    def close(self) -> None:
        self.flush_ops()
        with self._open_lock:
            connections, self._connections = list(self._connections), weakref.WeakSet()
            self._local = threading.local()  # a later call opens afresh
            self._ready = False
            self._closed = True
        for db in connections:
            db.close()

    # --------------------------------------------------------------------------- accounting
    def op_counts(self, day: str) -> dict[str, int]:
        rows = self._ready and self._open().execute("SELECT op, n FROM ops WHERE day = ?", (day,)).fetchall()
        counts: dict[str, int] = dict(rows or [])
        with self._ops_lock:
            for (d, op), n in self._ops.items():
                if d == day:
                    counts[op] = counts.get(op, 0) + n
        return counts

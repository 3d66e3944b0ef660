"""Erasure bookkeeping on the local store: the pseudonym key and the tombstones.

The key (32 random bytes, hex) lives in the ``meta`` table under ``erasure_key``, created on
first use; a user's pseudonym is ``erased-`` + HMAC-SHA256(key, uid) (first 32 hex digits). A
tombstone is the meta row ``tombstone:<pseudonym>``, so it never names the user, and it stays
after the erasure: every later write of the user's data is refused (``refuse_erased``). While an
erasure is under way the row ``erasing:<pseudonym>`` holds the user id (the user's data is still
there anyway), so the nightly run can finish an erasure a crash left half-done; it goes last."""

from __future__ import annotations

import json
from datetime import datetime

from ..base import RunInfo
from .db import LocalDb
from .forget import is_erased, pseudonym, with_names_user
from .schema import iso


class Erasure(LocalDb):
    def pseudonym(self, uid: str) -> str:
        return pseudonym(self, uid)

    def put_tombstone(self, uid: str, at: datetime) -> None:
        """Idempotent: the first erasure's time is kept. Marks the erasure as under way, in the
        same transaction."""
        alias = pseudonym(self, uid)
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (f"erasing:{alias}", uid))
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (f"tombstone:{alias}", iso(at)))
        self._count("writes", 2)

    def finish_erasure(self, uid: str) -> None:
        self._q("DELETE FROM meta WHERE key = ?", (f"erasing:{pseudonym(self, uid)}",), op="deletes")

    def pending_erasures(self, limit: int) -> list[str]:
        """User ids whose erasure started and did not finish, oldest pseudonym order, at most ``limit``."""
        if not self._ready and not (self.root / "mirror.db").exists():
            return []
        rows = self._q("SELECT value FROM meta WHERE key LIKE 'erasing:%' ORDER BY key LIMIT ?", (limit,))
        return [str(r[0]) for r in rows]

    def batch_runs(self) -> list[RunInfo]:
        """Every Batch API run: their records list uploaded files and the jobs they carry."""
        rows = self._q(
            "SELECT info FROM runs WHERE json_extract(info, '$.params.via') = 'batch-api' ORDER BY created_at"
        )
        return [RunInfo.from_dict(json.loads(r[0])) for r in rows]

    def is_erased(self, uid: str) -> bool:
        return is_erased(self, uid)

    def forget_queued(self, uid: str) -> int:
        """Queued messages (stores/local/queue.py, same file) naming the user."""
        db = with_names_user(self._open())
        cur = db.execute(
            "DELETE FROM queue WHERE names_user(body, ?) OR names_user(ordering_key, ?) OR names_user(attributes, ?)",
            (uid, uid, uid),
        )
        self._count("deletes")
        return cur.rowcount

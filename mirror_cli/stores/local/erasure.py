"""Erasure bookkeeping on the local store: the pseudonym key and the tombstones.

The key (32 random bytes, hex) lives in the ``meta`` table under ``erasure_key``, created on
first use; a user's pseudonym is ``erased-`` + HMAC-SHA256(key, uid) (first 32 hex digits). A
tombstone is the meta row ``tombstone:<pseudonym>``, so it never names the user, and it stays
after the erasure: every later write of the user's data is refused (``refuse_erased``)."""

from __future__ import annotations

from datetime import datetime

from .db import LocalDb
from .forget import is_erased, pseudonym, with_names_user
from .schema import iso


class Erasure(LocalDb):
    def pseudonym(self, uid: str) -> str:
        return pseudonym(self, uid)

    def put_tombstone(self, uid: str, at: datetime) -> None:
        """Idempotent: the first erasure's time is kept."""
        self._q(
            "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
            (f"tombstone:{pseudonym(self, uid)}", iso(at)),
            op="writes",
        )

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

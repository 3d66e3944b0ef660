"""The cache index: which avatar answers a user's request key."""

from __future__ import annotations

from datetime import datetime

from ..base import CacheEntry
from .db import LocalDb
from .schema import iso


class Cache(LocalDb):
    def cache_get(self, uid: str, request_key: str) -> CacheEntry | None:
        rows = self._q("SELECT avatar_id, created_at FROM cache WHERE uid = ? AND request_key = ?", (uid, request_key))
        if not rows:
            return None
        return CacheEntry(uid, request_key, rows[0][0], datetime.fromisoformat(rows[0][1]))

    def cache_put(self, entry: CacheEntry) -> None:
        self._q(
            "INSERT OR REPLACE INTO cache(uid, request_key, avatar_id, created_at) VALUES (?, ?, ?, ?)",
            (entry.user_id, entry.request_key, entry.avatar_id, iso(entry.created_at)),
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

    def forget_cache(self, uid: str) -> int:
        """Erasure: every cache entry of the user."""
        return self._open().execute("DELETE FROM cache WHERE uid = ?", (uid,)).rowcount

"""The exact-repeat cache: one document per (user, request key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...models import validate_user_id
from ..base import (
    CacheEntry,
)
from .client import FirebaseClient, _iso
from .forget import delete_all, id_prefix


class Cache(FirebaseClient):
    # -------------------------------------------------------------------------------- cache
    def _cache(self) -> Any:
        return self.db.collection("avatar_cache")

    @staticmethod
    def _cache_id(uid: str, key: str) -> str:
        return f"{validate_user_id(uid)}.{key}"  # '.' never occurs in a user id: ids cannot collide

    def cache_get(self, uid: str, request_key: str) -> CacheEntry | None:
        with self._rpc("reading the cache", "reads"):
            snap = self._cache().document(self._cache_id(uid, request_key)).get(**self._rt)
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        if d.get("uid") != uid:  # scoped per user, always
            return None
        return CacheEntry(uid, request_key, d["avatar_id"], datetime.fromisoformat(d["created_at"]))

    def cache_put(self, entry: CacheEntry) -> None:
        doc_id = self._cache_id(entry.user_id, entry.request_key)
        with self._rpc("writing the cache", "writes"):
            self._cache().document(doc_id).set(
                {
                    "uid": entry.user_id,
                    "request_key": entry.request_key,
                    "avatar_id": entry.avatar_id,
                    "doc_id": doc_id,
                    "created_at": _iso(entry.created_at),
                },
                **self._rt,
            )

    def cache_entries(self, uid: str | None = None) -> list[CacheEntry]:
        from google.cloud.firestore import FieldFilter

        query = self._cache()
        if uid:
            query = query.where(filter=FieldFilter("uid", "==", uid))
        out = []
        for snap in self._keyset(query, "doc_id", "listing the cache"):
            d = snap.to_dict() or {}
            out.append(CacheEntry(d["uid"], d["request_key"], d["avatar_id"], datetime.fromisoformat(d["created_at"])))
        return sorted(out, key=lambda e: e.created_at)

    def cache_delete(self, uid: str, request_key: str) -> None:
        with self._rpc("deleting a cache entry", "deletes"):
            self._cache().document(self._cache_id(uid, request_key)).delete(**self._rt)

    def forget_cache(self, uid: str) -> int:
        """Erasure: the user's cache entries (ids ``<uid>.<request key>``)."""
        return delete_all(self, id_prefix(self._cache(), f"{validate_user_id(uid)}."), "cache entries")

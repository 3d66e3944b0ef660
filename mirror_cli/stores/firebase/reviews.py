"""Designers' reviews: one document per reviewed asset, in a collection per kind
(``fallback_reviews``, ``avatar_reviews``), keyed by the asset's key. Only the server writes them
(firestore.rules deny every app user)."""

from __future__ import annotations

from typing import Any

from ..base import Review, ReviewKind
from .client import FirebaseClient
from .forget import delete_all, id_prefix


def _doc_id(key: str) -> str:
    # review keys are '/'-joined validated names ([A-Za-z0-9_.-]), which never contain '~'
    return key.replace("/", "~")


class Reviews(FirebaseClient):
    def _reviews(self, kind: ReviewKind) -> Any:
        return self.db.collection(f"{kind}_reviews")

    def get_review(self, kind: ReviewKind, key: str) -> Review | None:
        with self._rpc("reading a review", "reads"):
            snap = self._reviews(kind).document(_doc_id(key)).get(**self._rt)
        return Review.from_dict(snap.to_dict() or {}) if snap.exists else None

    def put_review(self, review: Review) -> None:
        with self._rpc("writing a review", "writes"):
            self._reviews(review.kind).document(_doc_id(review.key)).set(review.to_dict(), **self._rt)

    def list_reviews(self, kind: ReviewKind, prefix: str = "") -> list[Review]:
        from google.cloud.firestore import FieldFilter

        query = self._reviews(kind)
        if prefix:
            query = query.where(filter=FieldFilter("key", "<", prefix + "\uf8ff"))
        snaps = self._keyset(query, "key", "listing reviews", start=prefix, inclusive=True)
        return [Review.from_dict(s.to_dict() or {}) for s in snaps]

    def delete_review(self, kind: ReviewKind, key: str) -> None:
        with self._rpc("deleting a review", "deletes"):
            self._reviews(kind).document(_doc_id(key)).delete(**self._rt)

    def forget_reviews(self, uid: str) -> int:
        """Erasure: reviews of the user's avatars (keys ``<uid>/<avatar id>``)."""
        return delete_all(self, id_prefix(self._reviews("avatar"), _doc_id(f"{uid}/")), "reviews")

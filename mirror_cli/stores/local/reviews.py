"""Designers' reviews: one row per reviewed asset (migration 4)."""

from __future__ import annotations

import json

from ..base import Review, ReviewKind
from .db import LocalDb
from .forget import with_names_user


class Reviews(LocalDb):
    def get_review(self, kind: ReviewKind, key: str) -> Review | None:
        rows = self._q("SELECT body FROM reviews WHERE kind = ? AND key = ?", (kind, key))
        return Review.from_dict(json.loads(rows[0][0])) if rows else None

    def put_review(self, review: Review) -> None:
        self._q(
            "INSERT INTO reviews(kind, key, state, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(kind, key) DO UPDATE SET state = excluded.state, body = excluded.body",
            (review.kind, review.key, review.state, json.dumps(review.to_dict())),
            op="writes",
        )

    def list_reviews(self, kind: ReviewKind, prefix: str = "") -> list[Review]:
        # a range on the primary key, not LIKE: '_' and '%' are ordinary characters of keys
        rows = self._q(
            "SELECT body FROM reviews WHERE kind = ? AND key >= ? AND key < ? ORDER BY key",
            (kind, prefix, prefix + "\U0010ffff"),
        )
        return [Review.from_dict(json.loads(r[0])) for r in rows]

    def delete_review(self, kind: ReviewKind, key: str) -> None:
        self._q("DELETE FROM reviews WHERE kind = ? AND key = ?", (kind, key), op="deletes")

    def forget_reviews(self, uid: str) -> int:
        """Erasure: reviews of the user's avatars."""
        db = with_names_user(self._open())
        return db.execute("DELETE FROM reviews WHERE names_user(key, ?) OR names_user(body, ?)", (uid, uid)).rowcount

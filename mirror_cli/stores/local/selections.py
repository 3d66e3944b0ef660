"""Selections: one row per choice a user made (migration 7); the current one is the last made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...models import validate_user_id
from ..base import Selection
from .db import LocalDb
from .schema import iso as _iso


class Selections(LocalDb):
    def put_selection(self, selection: Selection) -> None:
        validate_user_id(selection.user_id)
        self._q(
            "INSERT INTO selections(uid, at, avatar_id, stage, target) VALUES (?, ?, ?, ?, ?)",
            (selection.user_id, _iso(selection.at), selection.avatar_id, selection.stage, selection.target),
            op="writes",
        )

    def get_selection(self, uid: str) -> Selection | None:
        rows = self._q(
            "SELECT avatar_id, stage, target, at FROM selections WHERE uid = ? ORDER BY rowid DESC LIMIT 1",
            (validate_user_id(uid),),
        )
        if not rows:
            return None
        avatar_id, stage, target, at = rows[0]
        return Selection(uid, avatar_id, stage, target, datetime.fromisoformat(at))

    def selection_counts(self, since: datetime, until: datetime, uid: str | None = None) -> dict[str, int]:
        sql = "SELECT stage, COUNT(*) FROM selections WHERE at >= ? AND at < ?"
        args: tuple[Any, ...] = (_iso(since), _iso(until))
        if uid:
            sql, args = sql + " AND uid = ?", (*args, uid)
        return {stage: n for stage, n in self._q(sql + " GROUP BY stage ORDER BY stage", args)}

    def forget_selections(self, uid: str) -> int:
        """Erasure: every avatar choice of the user."""
        return self._open().execute("DELETE FROM selections WHERE uid = ?", (uid,)).rowcount

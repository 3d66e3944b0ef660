"""Selections: the avatar a user shows (the ``selected_avatar`` field of ``users/{uid}``, which
the app may also write under firestore.rules), one ``selections`` document per choice, and per-day
distributed counters per stage (``selection_daily/{day}.{shard}``: no hot document)."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from ...errors import UsageError
from ...models import validate_user_id
from ..base import Selection
from .client import FirebaseClient, _iso
from .forget import delete_all, field_is

SELECTION_SHARDS = 10
MAX_DAYS = 400  # a usage period longer than this reads the events of one user only


class Selections(FirebaseClient):
    def put_selection(self, selection: Selection) -> None:
        from google.cloud.firestore import Increment

        uid = validate_user_id(selection.user_id)
        at = _iso(selection.at)
        day = at[:10]
        batch = self.db.batch()
        batch.update(self._users().document(uid), {"selected_avatar": selection.to_dict()})
        batch.create(
            self.db.collection("selections").document(f"{uid}.{uuid.uuid4().hex}"),
            {**selection.to_dict(), "uid": uid},
        )
        shard = random.randrange(SELECTION_SHARDS)
        batch.set(
            self.db.collection("selection_daily").document(f"{day}.{shard}"),
            {"day": day, "stages": {selection.stage: Increment(1)}},
            merge=True,
        )
        with self._rpc(f"recording user {uid}'s selected avatar"):
            batch.commit(**self._rt)
        self._count("writes", 3)

    def get_selection(self, uid: str) -> Selection | None:
        validate_user_id(uid)
        with self._rpc(f"reading user {uid}'s selected avatar", "reads"):
            snap = self._users().document(uid).get(["selected_avatar"], **self._rt)
        chosen = (snap.to_dict() or {}).get("selected_avatar") if snap.exists else None
        if not isinstance(chosen, dict) or not chosen.get("avatar_id") or not chosen.get("selected_at"):
            return None
        return Selection.from_dict(uid, chosen)

    def selection_counts(self, since: datetime, until: datetime, uid: str | None = None) -> dict[str, int]:
        from google.cloud.firestore import FieldFilter

        counts: dict[str, int] = {}
        if uid:
            query = self.db.collection("selections").where(filter=FieldFilter("uid", "==", validate_user_id(uid)))
            for doc in self._stream(query, "reading selections"):
                d = doc.to_dict() or {}
                if _iso(since) <= str(d.get("selected_at")) < _iso(until):
                    counts[d["stage"]] = counts.get(d["stage"], 0) + 1
            return dict(sorted(counts.items()))
        if until - since > timedelta(days=MAX_DAYS):
            raise UsageError(
                f"Selections are counted over at most {MAX_DAYS} days.", "Pass a shorter --since/--until range."
            )
        query = self.db.collection("selection_daily")
        query = query.where(filter=FieldFilter("day", ">=", _iso(since)[:10]))
        query = query.where(filter=FieldFilter("day", "<", _iso(until)[:10]))
        for doc in self._stream(query, "reading selection counters"):
            for stage, n in ((doc.to_dict() or {}).get("stages") or {}).items():
                counts[stage] = counts.get(stage, 0) + int(n)
        return dict(sorted(counts.items()))

    def _stream(self, query: Any, what: str) -> list[Any]:
        with self._rpc(what):
            docs = list(query.stream(**self._rt))
        self._count("reads", max(1, len(docs)))
        return docs

    def forget_selections(self, uid: str) -> int:
        """Erasure: every avatar choice of the user (the current one goes with the profile)."""
        return delete_all(self, field_is(self.db.collection("selections"), "uid", uid), "selections")

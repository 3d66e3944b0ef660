"""Users, the progress the app writes, and the due index the nightly planner queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ...models import Persona, Progress, validate_user_id
from ..base import (
    DUE_INDEX_VERSION,
    SHARD_BUCKETS,
    DueQuery,
    UnreadableProfile,
    profile_or_error,
    read_profile,
    shard_bucket,
)
from .client import PAGE, FirebaseClient, _iso, _persona, _wrap
from .forget import refuse_erased


def _anchor(progress: Progress) -> dict[str, Any]:
    """What the tool last wrote of the user's active days, and when (a timestamp): the rules let
    the app's active_days grow from here by no more than the days that pass (firestore.rules)."""
    return {"active_days": progress.active_days, "at": datetime.now(UTC)}


class Profiles(FirebaseClient):
    # -------------------------------------------------------------------------------- users
    def iter_user_ids(self, page_size: int = PAGE) -> Iterator[str]:
        for doc in self._keyset(self._users().select(["uid"]), "uid", "listing users", page_size=page_size):
            yield doc.get("uid")

    def get_user(self, uid: str) -> Persona | None:
        validate_user_id(uid)
        with self._rpc(f"reading user {uid}", "reads"):
            snap = self._users().document(uid).get(**self._rt)
        return profile_or_error(uid, lambda: _persona(snap.to_dict())) if snap.exists else None

    def put_user(self, persona: Persona) -> None:
        """Create the profile with its due fields (no stage yet, its shard bucket), or replace the
        profile fields of an existing one, keeping the due fields the tool maintains."""
        from google.api_core.exceptions import AlreadyExists, Conflict

        refuse_erased(self, persona.id)

        validate_user_id(persona.id)
        body = {
            **persona.model_dump(mode="json"),
            "uid": persona.id,
            "updated_at": _iso(datetime.now(UTC)),
            "shard": shard_bucket(persona.id),
            "progress_anchor": _anchor(persona.progress),
        }
        doc = self._users().document(persona.id)
        with self._rpc(f"writing user {persona.id}", "writes"):
            try:
                doc.create({**body, "latest_rank": -1, "next_window": 0}, **self._rt)
            except (AlreadyExists, Conflict):
                doc.set(body, merge=list(body), **self._rt)
                self._count("writes")

    def set_progress(self, uid: str, progress: Progress) -> None:
        validate_user_id(uid)
        with self._rpc(f"updating the progress of {uid}", "writes"):
            self._users().document(uid).update(
                {
                    "progress": progress.model_dump(mode="json"),
                    "updated_at": _iso(datetime.now(UTC)),
                    "progress_anchor": _anchor(progress),
                },
                **self._rt,
            )

    def due_users(
        self, queries: list[DueQuery], buckets: tuple[int, int] = (0, SHARD_BUCKETS), page_size: int = PAGE
    ) -> Iterator[tuple[Persona | UnreadableProfile, int]]:
        """One indexed query per stage (firestore.indexes.json: latest_rank, progress.active_days,
        then next_window when the tick keeps to the nightly windows, then shard): reads are the
        due users' documents, plus one per empty query."""
        from google.cloud.firestore import FieldFilter

        for q in queries:
            query = (
                self._users()
                .where(filter=FieldFilter("latest_rank", "==", q.latest_rank))
                .where(filter=FieldFilter("progress.active_days", ">=", q.min_active_days))
            )
            orders = ["progress.active_days"]
            if q.opens_by is not None:
                query = query.where(filter=FieldFilter("next_window", "<=", q.opens_by))
                orders.append("next_window")
            if buckets != (0, SHARD_BUCKETS):
                query = query.where(filter=FieldFilter("shard", ">=", buckets[0])).where(
                    filter=FieldFilter("shard", "<", buckets[1])
                )
                orders.append("shard")
            for name in orders:
                query = query.order_by(name)
            query = self._record(query.order_by("__name__").limit(page_size))
            last = None
            while True:
                page = query.start_after(last) if last is not None else query
                with self._rpc("finding the users who are due"):
                    docs = list(page.stream(**self._rt))
                self._count("reads", max(1, len(docs)))
                for doc in docs:
                    yield read_profile(doc.id, partial(_persona, doc.to_dict())), q.latest_rank
                if len(docs) < page_size:
                    break
                last = docs[-1]

    def raise_latest_rank(self, uid: str, rank: int) -> None:
        from google.api_core.exceptions import NotFound
        from google.cloud.firestore import Maximum

        try:
            self._users().document(validate_user_id(uid)).update(
                {"latest_rank": Maximum(rank), "shard": shard_bucket(uid)}, **self._rt
            )
        except NotFound:
            return  # not a stored user (an example persona): it is indexed when it is stored
        except Exception as exc:
            raise _wrap(exc, f"updating the due index of {uid}") from exc
        self._count("writes")

    def set_next_window(self, uid: str, opens_at: int) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._users().document(validate_user_id(uid)).update({"next_window": opens_at}, **self._rt)
        except NotFound:
            return  # not a stored user
        except Exception as exc:
            raise _wrap(exc, f"updating the nightly window of {uid}") from exc
        self._count("writes")

    def due_index_version(self) -> int:
        with self._rpc("reading the due index version", "reads"):
            snap = self.db.collection("store_meta").document("due_index").get(**self._rt)
        if snap.exists:
            return int((snap.to_dict() or {}).get("version", 0))
        # No version yet: when every profile already carries the due fields (a project that
        # started with this version), the index is complete; two count queries tell.
        from google.cloud.firestore import FieldFilter

        with self._rpc("checking the due index"):
            total = self._record(self._users().count()).get(**self._rt)[0][0].value
            # every due field at once: a profile has next_window only from version 2 on
            indexed = (
                self._record(self._users().where(filter=FieldFilter("next_window", ">=", 0)).count())
                .get(**self._rt)[0][0]
                .value
            )
        self._count("reads", 2 + (total + indexed) // 1000)  # billed per 1,000 index entries
        if total == indexed:
            self.set_due_index_version(DUE_INDEX_VERSION)
            return DUE_INDEX_VERSION
        return 0

    def set_due_index_version(self, version: int) -> None:
        with self._rpc("writing the due index version", "writes"):
            self.db.collection("store_meta").document("due_index").set({"version": version}, **self._rt)

    def forget_profile(self, uid: str) -> int:
        """Erasure: the profile document (persona, progress, consent, selection, due fields)."""
        doc = self._users().document(validate_user_id(uid))
        with self._rpc("erasing a profile"):
            existed = doc.get(["shard"], **self._rt).exists
            doc.delete(**self._rt)
        return int(existed)

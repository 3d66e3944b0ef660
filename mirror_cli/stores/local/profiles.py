"""Profiles and progress, with the due index (latest stage rank, shard bucket, active days)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

from ...errors import StoreError
from ...models import Persona, Progress, validate_user_id
from ..base import SHARD_BUCKETS, DueQuery, UnreadableProfile, profile_or_error, read_profile, shard_bucket
from .db import LocalDb
from .forget import refuse_erased
from .schema import iso

_UPSERT_USER = (
    "INSERT INTO users(uid, persona, updated_at, latest_rank, shard, active_days) VALUES (?, ?, ?, -1, ?, ?) "
    "ON CONFLICT(uid) DO UPDATE SET persona = excluded.persona, updated_at = excluded.updated_at, "
    "shard = excluded.shard, active_days = excluded.active_days"
)


def _user_row(persona: Persona) -> tuple[str, str, str, int, int]:
    return (
        validate_user_id(persona.id),
        persona.model_dump_json(),
        iso(datetime.now(UTC)),
        shard_bucket(persona.id),
        persona.progress.active_days,
    )


def _unknown(uid: str) -> StoreError:
    return StoreError(f"User {uid!r} is not in the store.", "Add the user first (mirror users add).")


class Profiles(LocalDb):
    def iter_user_ids(self, page_size: int = 500) -> Iterator[str]:
        last = ""
        while True:
            rows = self._q("SELECT uid FROM users WHERE uid > ? ORDER BY uid LIMIT ?", (last, page_size))
            if not rows:
                return
            for (uid,) in rows:
                yield uid
            last = rows[-1][0]

    def get_user(self, uid: str) -> Persona | None:
        rows = self._q("SELECT persona FROM users WHERE uid = ?", (validate_user_id(uid),))
        return profile_or_error(uid, lambda: Persona.model_validate_json(rows[0][0])) if rows else None

    def put_user(self, persona: Persona) -> None:
        """Insert or replace the profile; a new user enters the due index with no stage yet."""
        refuse_erased(self, persona.id)
        self._q(_UPSERT_USER, _user_row(persona), op="writes")

    def set_progress(self, uid: str, progress: Progress) -> None:
        """Read, change and write the profile in one write transaction (no lost update)."""
        if self.get_user(uid) is None:  # an empty store stays untouched
            raise _unknown(uid)
        with self.transaction() as db:
            row = db.execute("SELECT persona FROM users WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                raise _unknown(uid)
            persona = Persona.model_validate_json(row[0]).model_copy(update={"progress": progress})
            db.execute(_UPSERT_USER, _user_row(persona))
        self._count("writes")

    def due_users(
        self, queries: list[DueQuery], buckets: tuple[int, int] = (0, SHARD_BUCKETS), page_size: int = 500
    ) -> Iterator[tuple[Persona | UnreadableProfile, int]]:
        for q in queries:
            last = ""
            while True:
                opens_by = q.opens_by if q.opens_by is not None else 2**62
                rows = self._q(
                    "SELECT uid, persona FROM users WHERE latest_rank = ? AND active_days >= ? AND next_window <= ? "
                    "AND shard >= ? AND shard < ? AND uid > ? ORDER BY uid LIMIT ?",
                    (q.latest_rank, q.min_active_days, opens_by, buckets[0], buckets[1], last, page_size),
                )
                for uid, persona in rows:
                    yield read_profile(uid, partial(Persona.model_validate_json, persona)), q.latest_rank
                if len(rows) < page_size:
                    break
                last = rows[-1][0]

    def raise_latest_rank(self, uid: str, rank: int) -> None:
        self._q(
            "UPDATE users SET latest_rank = MAX(COALESCE(latest_rank, -1), ?), shard = ? WHERE uid = ?",
            (rank, shard_bucket(uid), validate_user_id(uid)),
            op="writes",
        )

    def set_next_window(self, uid: str, opens_at: int) -> None:
        self._q("UPDATE users SET next_window = ? WHERE uid = ?", (opens_at, validate_user_id(uid)), op="writes")

    def due_index_version(self) -> int:
        rows = self._q("SELECT value FROM meta WHERE key = 'due_index'")
        return int(rows[0][0]) if rows else 0

    def set_due_index_version(self, version: int) -> None:
        self._q("INSERT OR REPLACE INTO meta(key, value) VALUES ('due_index', ?)", (str(version),), op="writes")

    def forget_profile(self, uid: str) -> int:
        """Erasure: the profile row (persona, progress, consent, due index)."""
        return self._open().execute("DELETE FROM users WHERE uid = ?", (uid,)).rowcount

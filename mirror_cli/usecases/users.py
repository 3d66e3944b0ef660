"""Users: lookup (with a helpful error for an unknown id), import, progress, and shards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import UnknownUserError, UsageError
from ..models import Persona, Progress, validate_user_id
from ..stores.base import SHARD_BUCKETS, shard_bucket
from ..wiring import Wiring


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> Shard | None:
        """'i/N' (0-based); falls back to Cloud Run / Kubernetes indexed-job variables."""
        if text:
            try:
                i, n = (int(x) for x in text.split("/"))
            except ValueError:
                raise UsageError(f"Invalid shard {text!r}.", "Use --shard i/N with 0 <= i < N, e.g. 0/4.") from None
        elif "CLOUD_RUN_TASK_INDEX" in os.environ:
            i, n = int(os.environ["CLOUD_RUN_TASK_INDEX"]), int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1"))
        elif "JOB_COMPLETION_INDEX" in os.environ:
            i = int(os.environ["JOB_COMPLETION_INDEX"])
            n = int(os.environ.get("MIRROR_SHARD_COUNT") or os.environ.get("JOB_COMPLETIONS") or "1")
        else:
            return None
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"Invalid shard {i}/{n}.", "The index must satisfy 0 <= i < N.")
        if n > SHARD_BUCKETS:
            raise UsageError(f"Invalid shard {i}/{n}.", f"At most {SHARD_BUCKETS} shards.")
        return cls(i, n)

    @property
    def buckets(self) -> tuple[int, int]:
        """The contiguous range [lo, hi) of stored shard buckets this shard owns."""
        return self.index * SHARD_BUCKETS // self.count, (self.index + 1) * SHARD_BUCKETS // self.count

    def owns(self, uid: str) -> bool:
        lo, hi = self.buckets
        return lo <= shard_bucket(uid) < hi


def user_ids(w: Wiring, shard: Shard | None = None) -> Iterator[str]:
    """The store's users, and only them (example personas are users once imported)."""
    for uid in w.store.iter_user_ids():
        if shard is None or shard.owns(uid):
            yield uid


def persona(w: Wiring, uid: str) -> Persona:
    validate_user_id(uid)
    stored = w.store.get_user(uid)
    if stored is not None:
        return stored
    known: list[str] = []
    for known_uid in w.store.iter_user_ids():
        known.append(known_uid)
        if len(known) > 20:
            break
    shown = ", ".join(known[:20]) + (" (and more: 'mirror users list')" if len(known) > 20 else "")
    raise UnknownUserError(
        f"Unknown user {uid!r}.",
        f"Known users: {shown}."
        if known
        else "The store has no users yet: add them with 'mirror users import "
        "FILE.yaml', or the example personas with 'mirror users import --examples'.",
    )


def set_progress(w: Wiring, uid: str, progress: Progress) -> Persona:
    current = persona(w, uid)  # a user of the store (example personas only once imported)
    updated = current.model_copy(update={"progress": progress.model_copy(update={"updated_at": w.now()})})
    w.store.put_user(updated)
    return updated


def import_users(w: Wiring, personas: list[Persona]) -> list[str]:
    """Add or replace users in the store; returns their ids."""
    for p in personas:
        w.store.put_user(p)
    return [p.id for p in personas]


def import_examples(w: Wiring) -> list[str]:
    """Import the example personas shipped with the package (demo data, on request only)."""
    from ..config import example_personas

    return import_users(w, list(example_personas().values()))

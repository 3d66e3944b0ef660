"""Which jobs bring a user's timeline up to date, and the due index that finds the users who
crossed a milestone with a few indexed queries (reads grow with the users due, not all users)."""

from __future__ import annotations

from ..models import Persona
from ..pipeline import JobSpec
from ..planner import OK_STATUSES
from ..stores.base import DUE_INDEX_VERSION, SHARD_BUCKETS, DueQuery
from ..wiring import Wiring
from .users import Shard


def latest_stage(w: Wiring, uid: str) -> str | None:
    table = w.configs.stages
    stages = [r.stage for r in w.store.list_avatars(uid) if r.status in OK_STATUSES and r.target in table.names]
    return max(stages, key=table.index) if stages else None


def evolve_specs(
    w: Wiring, persona: Persona, to: str | None = None, *, known_latest: tuple[str | None] | None = None
) -> list[JobSpec]:
    """The jobs that bring a user's timeline up to date: an anchor first if there is none,
    then the stage reached (only when a milestone was crossed since the latest avatar).
    ``known_latest`` carries the user's latest stage when the due index told it."""
    table = w.configs.stages
    latest = known_latest[0] if known_latest is not None else latest_stage(w, persona.id)
    reached = table.parse_stage(to) if to else table.stage_for_days(persona.progress.active_days)
    specs: list[JobSpec] = []
    if latest is None and reached != table.names[0]:
        specs.append(JobSpec(persona, persona.progress, table.names[0]))
    if to or latest is None or table.index(reached) > table.index(latest):
        specs.append(JobSpec(persona, persona.progress, reached))
    return specs


def due_queries(w: Wiring) -> list[DueQuery]:
    """One query per stage a user can be at (none yet, then each stage but the last): the
    users at that stage whose active days reached the next stage's threshold."""
    table = w.configs.stages
    queries = [DueQuery(-1, 0)]
    for rank, nxt in enumerate(table.names[1:]):
        queries.append(DueQuery(rank, table.get(nxt).from_day))
    return queries


def due_specs(w: Wiring, shard: Shard | None = None) -> list[JobSpec]:
    """The jobs of a nightly run, from a few indexed queries."""
    if w.store.due_index_version() < DUE_INDEX_VERSION:
        reindex_due(w)
    names = w.configs.stages.names
    buckets = shard.buckets if shard else (0, SHARD_BUCKETS)
    specs: list[JobSpec] = []
    for persona, rank in w.store.due_users(due_queries(w), buckets):
        known = (names[rank] if 0 <= rank < len(names) else None,)
        specs.extend(evolve_specs(w, persona, known_latest=known))
    return specs


def reindex_due(w: Wiring) -> int:
    """Fill the due index of users stored before it existed (once per store: reads every
    user and their avatars, a cost paid by the first due run only)."""
    table = w.configs.stages
    n = 0
    for uid in list(w.store.iter_user_ids()):
        latest = latest_stage(w, uid)
        w.store.raise_latest_rank(uid, table.index(latest) if latest else -1)
        n += 1
    w.store.set_due_index_version(DUE_INDEX_VERSION)
    return n

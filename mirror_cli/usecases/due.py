"""Which jobs bring a user's timeline up to date, the due index that finds the users who crossed
a milestone with a few indexed queries (reads grow with the users due, not all users), and the
nightly tick that serves them in their own night (``mirror_cli.tick``)."""

from __future__ import annotations

from ..models import Persona
from ..pipeline import JobSpec
from ..planner import OK_STATUSES
from ..stores.base import DUE_INDEX_VERSION, SHARD_BUCKETS, DueQuery
from ..tick import NightlyTick, TickPlan
from ..wiring import Wiring
from .shards import Shard


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


def nightly_tick(w: Wiring) -> NightlyTick:
    names = w.configs.stages.names
    nightly = w.configs.limits.nightly

    def specs_for(persona: Persona, rank: int) -> list[JobSpec]:
        return evolve_specs(w, persona, known_latest=(names[rank] if 0 <= rank < len(names) else None,))

    return NightlyTick(w.store, nightly.window, nightly.timezone, due_queries(w), specs_for)


def plan_tick(w: Wiring, shard: Shard | None = None, *, any_hour: bool = False, dry_run: bool = False) -> TickPlan:
    """One nightly tick's jobs, from a few indexed queries: reads grow with the due users
    whose window has opened, not with all users (see mirror_cli.tick)."""
    if w.store.due_index_version() < DUE_INDEX_VERSION:
        reindex_due(w)
    buckets = shard.buckets if shard else (0, SHARD_BUCKETS)
    return nightly_tick(w).plan(w.now(), buckets, any_hour=any_hour, dry_run=dry_run)


def due_specs(w: Wiring, shard: Shard | None = None) -> list[JobSpec]:
    """The jobs of every due user, whatever their local time (``evolve --due --any-hour``)."""
    return plan_tick(w, shard, any_hour=True).specs


def overdue_users(w: Wiring) -> int:
    """Due users whose nightly window passed with no tick serving them (missed ticks)."""
    if w.store.due_index_version() < DUE_INDEX_VERSION:
        return 0  # no window stored yet: the next tick indexes them
    return sum(1 for _ in nightly_tick(w).overdue(w.now()))


def reopen_window(w: Wiring, tick: NightlyTick, persona: Persona) -> None:
    """The window a user is next served in, recomputed with their zone's rules."""
    from ..nightly import epoch

    w.store.set_next_window(persona.id, epoch(tick.window.next_open(w.now(), tick.zone_of(persona))))


def reindex_due(w: Wiring) -> int:
    """Fill the due index of users stored before it existed (once per store: reads every
    user and their avatars, a cost paid by the first due run only)."""
    table = w.configs.stages
    n = 0
    for uid in list(w.store.iter_user_ids()):
        latest = latest_stage(w, uid)
        w.store.raise_latest_rank(uid, table.index(latest) if latest else -1)
        w.store.set_next_window(uid, 0)  # the next tick looks at the user and decides
        n += 1
    w.store.set_due_index_version(DUE_INDEX_VERSION)
    return n

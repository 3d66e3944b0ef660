"""The nightly tick: which due users one run serves, in each user's own night.

Run hourly (Cloud Scheduler -> Cloud Run Job, or a Kubernetes CronJob ``0 * * * *``), a tick reads
only the due users whose nightly window has opened (the stored ``next_window``, an indexed field
queried together with the due fields and the shard range), then for each of them, with the
zone's rules:

- inside the window now: planned (``in_window``); once all of the user's jobs ended well
  (``served``), the user's next window is the next night's;
- the window passed unserved (ticks were missed, or the user became due outside their night):
  moved to the next night's window (``rescheduled``), never served at a random hour.

A user left by a tick (a failed job, a limit, a stop) keeps an open window: the next tick of the
same night tries again. ``--any-hour`` serves every due user whatever their local time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .nightly import Window, epoch, zone
from .stores.base import SHARD_BUCKETS, DueQuery, ProfileStore, UnreadableProfile

if TYPE_CHECKING:
    from .models import Persona
    from .pipeline import JobSpec, Outcome

# A user is served when each of their jobs ended with an avatar of their own, or (Batch API) was
# handed to a batch: its result is collected later, and the user's night is over either way.
SERVED_STATUSES = ("generated", "cached", "ingested", "planned")


@dataclass
class TickPlan:
    """What one tick found and planned."""

    now: datetime
    window: str
    any_hour: bool
    specs: list[JobSpec] = field(default_factory=list)
    due: int = 0  # due users whose window had opened (what the tick read)
    rescheduled: int = 0  # due, their window passed unserved: moved to the next night's
    zones: dict[str, ZoneInfo] = field(default_factory=dict)  # the users planned (in window)
    skipped: dict[str, str] = field(default_factory=dict)  # due users left out, with the reason

    @property
    def in_window(self) -> int:
        return len(self.zones)

    def served(self, outcomes: Iterable[Outcome]) -> list[str]:
        """The planned users all of whose jobs ended with an avatar of their own (or went into a
        Batch API batch; a dry run's outcomes are never passed here)."""
        statuses: dict[str, list[str]] = {uid: [] for uid in self.zones}
        for o in outcomes:
            if o.user_id in statuses:
                statuses[o.user_id].append(o.status)
        return [uid for uid, st in statuses.items() if all(s in SERVED_STATUSES for s in st)]

    def summary(self, outcomes: Iterable[Outcome] | None) -> dict[str, Any]:
        served = len(self.served(outcomes)) if outcomes is not None else 0
        return {
            "at": self.now.isoformat(),
            "window": self.window,
            "any_hour": self.any_hour,
            "due": self.due,
            "in_window": self.in_window,
            "served": served,
            "left": self.in_window - served if outcomes is not None else self.in_window,
            "rescheduled": self.rescheduled,
            # users left out for a reason of their own (a profile that does not validate), if any
            **({"skipped": len(self.skipped)} if self.skipped else {}),
        }


@dataclass
class NightlyTick:
    """Plans one tick on a profile store (the core runs the jobs, then calls ``finish``)."""

    store: ProfileStore
    window: Window
    default_zone: str
    queries: list[DueQuery]
    specs_for: Callable[[Persona, int], list[JobSpec]]

    def zone_of(self, persona: Persona) -> ZoneInfo:
        return zone(persona.timezone or self.default_zone)

    def plan(
        self,
        now: datetime,
        buckets: tuple[int, int] = (0, SHARD_BUCKETS),
        *,
        any_hour: bool = False,
        dry_run: bool = False,
    ) -> TickPlan:
        plan = TickPlan(now=now, window=self.window.label, any_hour=any_hour)
        opens_by = None if any_hour else epoch(now)
        queries = [replace(q, opens_by=opens_by) for q in self.queries]
        for persona, rank in self.store.due_users(queries, buckets):
            plan.due += 1
            if isinstance(persona, UnreadableProfile):  # theirs alone: named, and the night goes on
                plan.skipped[persona.uid] = persona.reason
                continue
            tz = self.zone_of(persona)
            if any_hour or self.window.contains(now, tz):
                plan.zones[persona.id] = tz
                plan.specs.extend(self.specs_for(persona, rank))
            else:
                plan.rescheduled += 1
                if not dry_run:
                    self.store.set_next_window(persona.id, epoch(self.window.next_open(now, tz)))
        return plan

    def finish(self, plan: TickPlan, outcomes: Iterable[Outcome]) -> None:
        """The served users' next window is the next night's; the others keep theirs (open)."""
        for uid in plan.served(outcomes):
            self.store.set_next_window(uid, epoch(self.window.after_served(plan.now, plan.zones[uid])))

    def hand_off(self, plan: TickPlan) -> None:
        """The planned users' jobs went to a job queue (``evolve --due --enqueue``): they are done
        for the night here (the queue redelivers what fails); a later tick of the same night would
        only publish them again."""
        for uid, tz in plan.zones.items():
            self.store.set_next_window(uid, epoch(self.window.after_served(plan.now, tz)))

    def overdue(self, now: datetime, buckets: tuple[int, int] = (0, SHARD_BUCKETS)) -> Iterator[Persona]:
        """Due users whose window ended with no tick serving them nor moving them on (ticks are
        missed or not scheduled): their window opened longer ago than a window lasts (plus the
        hour a fall-back night adds, and the hour until the next tick)."""
        cutoff = epoch(now - self.window.length() - timedelta(hours=2))
        for persona, _ in self.store.due_users([replace(q, opens_by=cutoff) for q in self.queries], buckets):
            if not isinstance(persona, UnreadableProfile):
                yield persona

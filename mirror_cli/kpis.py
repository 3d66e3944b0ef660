"""The design's KPIs, measured from the ledger and set against the configured targets.

Where each number comes from (every figure is computed from ledger lines in the period):

- success rate: paid images (``generated`` + ``spool_ingest`` lines) over the requests that went
  to the provider (paid images + ``failed`` + ``may_have_billed``, i.e. answered with an error or
  never answered). Cache hits, limits and content blocks are not generation attempts.
- generation p50/p95: the ``total_s`` timing of ``generated`` lines (a job's time from its start
  until its record was written), nearest-rank percentiles. Lines older than job timings have none
  and are not counted.
- style compliance: paid images that passed the quality gate, over those it judged.
- identity drift rate: new stages whose face was farther from the anchor than the style's
  threshold, over those scored (extra [identity]).
- cache hit rate: ``cache_hit`` lines over cache hits + paid images.
- fallback rate: ``fallback``/``degraded``/``blocked`` lines over every avatar served (those +
  cache hits + paid images); fallbacks served is their count.
- cost per active user: confirmed spend over the users who got a paid image in the period.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .models import LedgerEvent
from .telemetry.config import TargetsConfig

PAID = ("generated", "spool_ingest")
SERVED_INSTEAD = ("fallback", "degraded", "blocked")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Kpi:
    name: str
    label: str
    value: float | None
    target: float
    direction: Literal["min", "max"]  # the value must be at least / at most the target
    unit: str = ""

    @property
    def ok(self) -> bool | None:
        if self.value is None:
            return None  # nothing measured in the period
        return self.value >= self.target if self.direction == "min" else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class Tally:
    """The counts behind the KPIs of one period or one day."""

    paid: int = 0
    failed: int = 0
    unanswered: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    validated: int = 0
    compliant: int = 0
    identity_scored: int = 0
    identity_drift: int = 0
    cost_usd: float = 0.0
    users: set[str] = field(default_factory=set)
    durations: list[float] = field(default_factory=list)

    def add(self, e: LedgerEvent) -> None:
        if e.kind in PAID:
            self.paid += 1
            self.cost_usd += e.cost_usd
            self.users.add(e.user_id)
            if e.validation_ok is not None:
                self.validated += 1
                self.compliant += 1 if e.validation_ok else 0
            if e.identity_distance is not None:
                self.identity_scored += 1
                self.identity_drift += 1 if e.identity_drift else 0
            if e.kind == "generated" and e.timings is not None and e.timings.total_s is not None:
                self.durations.append(e.timings.total_s)
        elif e.kind == "failed":
            self.failed += 1
        elif e.kind == "may_have_billed":
            self.unanswered += 1
        elif e.kind == "cache_hit":
            self.cache_hits += e.count
        elif e.kind in SERVED_INSTEAD:
            self.fallbacks += 1

    def kpis(self, t: TargetsConfig) -> list[Kpi]:
        sent = self.paid + self.failed + self.unanswered
        served = self.paid + self.cache_hits + self.fallbacks
        return [
            Kpi("success_rate", "success rate", _ratio(self.paid, sent), t.success_rate, "min", "ratio"),
            Kpi("generation_p50_s", "generation p50", _p(self.durations, 0.50), t.generation_p95_s, "max", "s"),
            Kpi("generation_p95_s", "generation p95", _p(self.durations, 0.95), t.generation_p95_s, "max", "s"),
            Kpi(
                "style_compliance",
                "style compliance",
                _ratio(self.compliant, self.validated),
                t.style_compliance,
                "min",
                "ratio",
            ),
            Kpi(
                "identity_drift_rate",
                "identity drift rate",
                _ratio(self.identity_drift, self.identity_scored),
                t.identity_drift_rate,
                "max",
                "ratio",
            ),
            Kpi(
                "cache_hit_rate",
                "cache hit rate",
                _ratio(self.cache_hits, self.cache_hits + self.paid),
                t.cache_hit_rate,
                "min",
                "ratio",
            ),
            Kpi("fallback_rate", "fallback rate", _ratio(self.fallbacks, served), t.fallback_rate, "max", "ratio"),
            Kpi(
                "cost_per_active_user_usd",
                "cost per active user",
                round(self.cost_usd / len(self.users), 6) if self.users else None,
                t.cost_per_active_user_usd,
                "max",
                "USD",
            ),
        ]

    def counts(self) -> dict[str, Any]:
        return {
            "paid": self.paid,
            "failed": self.failed,
            "unanswered": self.unanswered,
            "cache_hits": self.cache_hits,
            "fallbacks_served": self.fallbacks,
            "cost_usd": round(self.cost_usd, 6),
            "active_users": len(self.users),
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _p(values: Sequence[float], q: float) -> float | None:
    v = percentile(values, q)
    return None if v is None else round(v, 3)


class KpiTally:
    """One streaming pass: the period's tally and one per UTC day."""

    def __init__(self) -> None:
        self.total = Tally()
        self.days: dict[str, Tally] = {}

    def add(self, e: LedgerEvent) -> None:
        self.total.add(e)
        self.days.setdefault(e.ts.date().isoformat(), Tally()).add(e)

    def tap(self, events: Iterable[LedgerEvent]) -> Iterator[LedgerEvent]:
        """Pass ``events`` on unchanged, counting each (shares the usage figures' one pass)."""
        for e in events:
            self.add(e)
            yield e

    def kpis(self, targets: TargetsConfig) -> list[dict[str, Any]]:
        return [k.to_dict() for k in self.total.kpis(targets)]

    def by_day(self, targets: TargetsConfig) -> list[dict[str, Any]]:
        """One row per day with events: its counts and each KPI's value and mark."""
        rows = []
        for day in sorted(self.days):
            tally = self.days[day]
            row: dict[str, Any] = {"day": day, **tally.counts()}
            for k in tally.kpis(targets):
                row[k.name] = k.value
                row[f"{k.name}_ok"] = k.ok
            rows.append(row)
        return rows

"""`mirror usage`: spend, cache efficiency, degradations, quality and store headroom, from the
ledger. One streaming pass over the period's events (the store pages them: memory stays flat in
the ledger's size) plus the month's paid total, which the store sums itself (SQL / counters)."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .models import LedgerEvent

PAID = ("generated", "spool_ingest")
DEGRADED = ("fallback", "degraded", "blocked")

# Firebase no-cost (Spark / free quota) limits per day, and storage caps.
FREE_TIER = {"reads": 50_000, "writes": 20_000, "deletes": 20_000}
FREE_FIRESTORE_BYTES = 1 << 30
FREE_STORAGE_BYTES = 5 * 10**9


@dataclass
class UsageFigures:
    period: str
    start: str
    end: str
    user: str | None
    generations: int = 0
    cache_hits: int = 0
    hit_rate: float = 0.0
    fallbacks_served: int = 0
    failures: int = 0
    moderation_blocks: int = 0
    # paid images image moderation flagged (kept hidden, the user got the fallback) or could not check
    moderation_flagged: int = 0
    moderation_skipped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    # requests sent whose answer never arrived (timeouts, kills), at their estimate: not in cost_usd
    may_have_billed: int = 0
    may_have_billed_usd: float = 0.0
    active_users: int = 0
    cost_per_active_user: float = 0.0
    month_to_date_usd: float = 0.0
    projected_month_usd: float = 0.0
    compliance_rate: float | None = None
    validated: int = 0
    identity_scored: int = 0  # new stages compared with the user's anchor (extra [identity])
    identity_drift: int = 0  # of which past the style's threshold
    identity_worst: float | None = None  # the largest distance measured
    selections: dict[str, int] = field(default_factory=dict)  # avatars chosen in the app, per stage
    # reports filed in the period (mirror_cli/reporting.py): open, resolved, and resolved as restored/removed
    reports: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)
    store_ops: dict[str, Any] = field(default_factory=dict)
    recommendations: list[str] = field(default_factory=list)
    kpis: list[dict[str, Any]] = field(default_factory=list)  # kpis.py: each figure with its target and mark
    days: list[dict[str, Any]] = field(default_factory=list)  # the same figures per UTC day
    # due users whose whole nightly window passed with no tick (mirror_cli.tick); None for one user
    overdue_users: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_period(period: str, since: date | None, until: date | None, today: date) -> tuple[datetime, datetime]:
    if since or until:
        start = since or date(today.year, today.month, 1)
        end = (until or today) + timedelta(days=1)
    elif period == "today":
        start, end = today, today + timedelta(days=1)
    else:  # month
        start = date(today.year, today.month, 1)
        end = date(today.year, today.month, calendar.monthrange(today.year, today.month)[1]) + timedelta(days=1)
    return (
        datetime(start.year, start.month, start.day, tzinfo=UTC),
        datetime(end.year, end.month, end.day, tzinfo=UTC),
    )


def aggregate(
    events: Iterable[LedgerEvent],
    month_to_date_usd: float,
    *,
    period: str,
    start: datetime,
    end: datetime,
    user: str | None,
    now: datetime,
    monthly_budget: float,
    ops_today: dict[str, int],
    quality: str,
    batch_available: bool,
) -> UsageFigures:
    f = UsageFigures(
        period=period,
        start=start.date().isoformat(),
        end=(end - timedelta(days=1)).date().isoformat(),
        user=user,
    )
    paid_users: set[str] = set()
    flagged: set[tuple[str, str]] = set()  # a verdict may come on the paid line or on a later line of its own
    ok = 0
    for e in events:
        if e.moderation is not None and e.moderation.verdict == "flagged":
            flagged.add((e.user_id, e.request_key))
        if e.kind in PAID:
            paid_users.add(e.user_id)
            ok += _count_paid(f, e)
        elif e.kind == "cache_hit":
            f.cache_hits += e.count
        elif e.kind in DEGRADED:
            f.fallbacks_served += 1
            if e.kind == "blocked" and (e.detail or "").startswith(("400 moderation", "moderation")):
                f.moderation_blocks += 1
        elif e.kind == "failed":
            f.failures += 1
        elif e.kind == "may_have_billed":
            f.may_have_billed += 1
            f.may_have_billed_usd += e.cost_usd
    f.moderation_flagged = len(flagged)
    looked_up = f.generations + f.cache_hits
    f.hit_rate = round(f.cache_hits / looked_up, 4) if looked_up else 0.0
    f.cost_usd = round(f.cost_usd, 6)
    f.may_have_billed_usd = round(f.may_have_billed_usd, 6)
    f.active_users = len(paid_users)
    f.cost_per_active_user = round(f.cost_usd / f.active_users, 6) if f.active_users else 0.0
    f.compliance_rate = round(ok / f.validated, 4) if f.validated else None

    mtd = month_to_date_usd  # the store's sum counts what may have been billed too
    f.month_to_date_usd = round(mtd, 6)
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    elapsed = max(1.0, (now - now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 86400)
    f.projected_month_usd = round(mtd / elapsed * days_in_month, 4)

    f.store_ops = {
        op: {
            "today": ops_today.get(op, 0),
            "free_tier": limit,
            "headroom": round(1 - ops_today.get(op, 0) / limit, 4),
        }
        for op, limit in FREE_TIER.items()
    }
    f.store_ops["bytes_stored_today"] = {
        "today": ops_today.get("bytes_stored", 0),
        "free_tier": FREE_STORAGE_BYTES,
        "headroom": round(1 - ops_today.get("bytes_stored", 0) / FREE_STORAGE_BYTES, 4),
    }
    f.recommendations = recommend(f, monthly_budget, quality, batch_available)
    return f


def _count_paid(f: UsageFigures, e: LedgerEvent) -> int:
    """One paid image's figures; 1 when it passed the quality gate."""
    f.generations += 1
    f.cost_usd += e.cost_usd
    f.input_tokens += e.usage.input_text_tokens + e.usage.input_image_tokens
    f.output_tokens += e.usage.output_image_tokens + e.usage.output_text_tokens
    m = f.by_model.setdefault(e.model or "?", {"generations": 0, "cost_usd": 0.0})
    m["generations"] += 1
    m["cost_usd"] = round(m["cost_usd"] + e.cost_usd, 6)
    if e.moderation is not None and e.moderation.verdict == "skipped":
        f.moderation_skipped += 1
    if e.identity_distance is not None:
        f.identity_scored += 1
        f.identity_drift += 1 if e.identity_drift else 0
        f.identity_worst = max(f.identity_worst or 0.0, e.identity_distance)
    if e.validation_ok is None:
        return 0
    f.validated += 1
    return 1 if e.validation_ok else 0


def recommend(f: UsageFigures, monthly_budget: float, quality: str, batch_available: bool) -> list[str]:
    out: list[str] = []
    if monthly_budget and f.projected_month_usd > monthly_budget:
        out.append(
            f"Projected month-end spend ${f.projected_month_usd:.2f} exceeds the ${monthly_budget:.2f} "
            "budget: lower --quality, or raise monthly_budget_usd in configs/limits.yaml."
        )
    elif monthly_budget and f.projected_month_usd > 0.8 * monthly_budget:
        out.append(f"Projected spend is {f.projected_month_usd / monthly_budget:.0%} of the monthly budget.")
    if f.cost_per_active_user > 2.0:
        out.append(
            f"Cost per active user ${f.cost_per_active_user:.2f} is above the $2 target: "
            + ("use quality 'low' for stages, " if quality != "low" else "")
            + "and run the nightly batch through the Batch API (--via batch-api, half price)."
        )
    if batch_available and f.generations >= 20:
        half = f.cost_usd / 2
        out.append(f"The Batch API would have cost about ${half:.2f} instead of ${f.cost_usd:.2f} for this period.")
    if f.fallbacks_served and f.generations and f.fallbacks_served > 0.2 * (f.generations + f.fallbacks_served):
        out.append(
            f"{f.fallbacks_served} fallbacks were served: check limits (per_user_daily, system_daily) "
            "and the budget, or raise them."
        )
    if f.compliance_rate is not None and f.compliance_rate < 0.9:
        out.append(
            f"Only {f.compliance_rate:.0%} of images passed the quality gate (target 90%): review the "
            "style's prompts or gate thresholds."
        )
    for op, v in f.store_ops.items():
        if isinstance(v, dict) and v["headroom"] < 0.2:
            out.append(f"Store {op} used {1 - v['headroom']:.0%} of the free tier today.")
    if f.generations and f.hit_rate < 0.05 and f.cache_hits == 0:
        out.append("No cache hits yet: repeats of the same request are free, so re-runs cost nothing.")
    return out

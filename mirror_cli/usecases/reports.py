"""What the operator reads and tidies: a user's timeline, usage figures and KPIs, the review
gallery, and purging the cache (never an avatar a timeline still shows)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import wall_clock
from ..errors import UsageError
from ..models import REPORT_STATUSES, AvatarRecord, Report, ReportReason, validate_user_id
from ..planner import shown
from ..wiring import Wiring
from .due import overdue_users
from .users import persona, user_ids

if TYPE_CHECKING:
    from ..reporting import Action, Filed

REPORTS_MAX = 1000  # reports one listing returns at most


def timeline(w: Wiring, uid: str) -> list[AvatarRecord]:
    """The user's avatars, latest per target, in stage then trilogy order."""
    who = persona(w, uid)
    latest: dict[str, AvatarRecord] = {}
    for r in w.store.list_avatars(who.id):
        if shown(r):
            latest[r.target] = r
    order = [*w.configs.stages.names, *w.configs.stages.trilogy]
    return [latest[t] for t in order if t in latest]


def usage(w: Wiring, *, period: str = "month", since: Any = None, until: Any = None, user: str | None = None) -> Any:
    from ..accounting import aggregate, resolve_period
    from ..kpis import KpiTally

    if since and until and since > until:
        raise UsageError(
            f"--since {since} is after --until {until}.", "Give the earlier date as --since, the later as --until."
        )
    if user:
        persona(w, user)
    now = w.now()
    start, end = resolve_period(period, since, until, now.date())
    tally = KpiTally()  # the KPIs ride on the figures' one pass over the ledger
    events = tally.tap(w.store.iter_events(start, end, user))
    month_to_date = w.store.month_paid_usd(now.strftime("%Y-%m"), user)
    entry = w.configs.models.models.get(w.model_name)
    figures = aggregate(
        events,
        month_to_date,
        period="range" if since or until else period,
        start=start,
        end=end,
        user=user,
        now=now,
        monthly_budget=w.configs.limits.monthly_budget_usd,
        ops_today=w.store.op_counts(wall_clock().strftime("%Y-%m-%d")),  # stores count in real time
        quality=w.settings.quality or w.configs.style.quality,
        batch_available=bool(entry and entry.capabilities.batch),
    )
    targets = w.configs.limits.targets
    figures.kpis, figures.days = tally.kpis(targets), tally.by_day(targets)
    if user is None:
        figures.overdue_users = overdue_users(w)
        if figures.overdue_users:
            figures.recommendations.append(
                f"{figures.overdue_users} due user(s) missed their whole nightly window: is "
                "'mirror evolve --due' scheduled hourly? They are served in their next night."
            )
    figures.selections = w.store.selection_counts(start, end, user)  # what users choose to show
    figures.reports = report_counts(w, start, end, user)
    return figures


def report_counts(w: Wiring, since: datetime, until: datetime, user: str | None = None) -> dict[str, int]:
    """Reports filed in [since, until): open, resolved, and how they were resolved."""
    if user:
        got: dict[str, int] = {}
        for r in w.store.list_reports(uid=user, limit=REPORTS_MAX):
            if since <= r.created_at < until:
                got[r.status] = got.get(r.status, 0) + 1
    else:
        got = w.store.report_counts(since, until)
    counts: dict[str, int] = {s: got.get(s, 0) for s in REPORT_STATUSES}
    resolved = counts["restored"] + counts["removed"]
    return {"filed": counts["open"] + resolved, "open": counts["open"], "resolved": resolved, **counts}


def report_avatar(
    w: Wiring, uid: str, avatar_id: str, reason: ReportReason, note: str = "", filed_by: str = "app"
) -> Filed:
    """A user reports one of their avatars: hidden at once, counted against their daily limit."""
    from ..reporting import file_report, reportable

    record = reportable(w.store, persona(w, uid).id, avatar_id)
    limit = w.configs.limits.reports_per_user_daily
    return file_report(w.store, record, reason, note=note, filed_by=filed_by, now=w.now(), daily_limit=limit)


def list_reports(w: Wiring, status: str | None = None, user: str | None = None, limit: int = 100) -> list[Report]:
    """Reports, newest first; ``status`` and ``user`` narrow them (an unknown user lists none)."""
    if status is not None and status not in REPORT_STATUSES:
        raise UsageError(f"Unknown report status {status[:40]!r}.", "Use one of: " + ", ".join(REPORT_STATUSES) + ".")
    if not 1 <= limit <= REPORTS_MAX:
        raise UsageError(f"--limit {limit} is out of range.", f"Pass 1 to {REPORTS_MAX}.")
    return w.store.list_reports(status, validate_user_id(user) if user else None, limit)


def show_report(w: Wiring, report_id: str) -> Report:
    from ..reporting import show_report as show

    return show(w.store, report_id)


def resolve_report(w: Wiring, report_id: str, action: Action, *, by: str, note: str) -> Report:
    from ..reporting import resolve_report as resolve

    return resolve(w.store, report_id, action, by=by, note=note, now=w.now())


def purge_cache(
    w: Wiring,
    *,
    older_than: str | None = None,
    user: str | None = None,
    everything: bool = False,
    dry_run: bool = False,
) -> Any:
    from ..housekeeping import parse_age, purge

    if not older_than and not everything:
        older_than = f"{w.configs.limits.cache_ttl_days}d"
    age = None if everything else parse_age(older_than or "30d")
    users = [persona(w, user).id] if user else None
    uids = users or sorted({e.user_id for e in w.store.cache_entries()})
    # what a timeline shows, and what a report hides (the evidence an operator decides on)
    protected = {
        u: {r.id for r in timeline(w, u)} | {r.id for r in w.store.list_avatars(u) if r.hidden_by} for u in uids
    }
    return purge(w.store, protected=protected, users=users, older_than=age, now=w.now(), dry_run=dry_run)


def _hidden(w: Wiring, uid: str) -> dict[str, str]:
    """The user's targets whose avatars are all hidden by a report (the gallery says so), by report."""
    records = w.store.list_avatars(uid)
    shown_targets = {r.target for r in records if shown(r)}
    return {r.target: r.hidden_by for r in records if r.hidden_by and r.target not in shown_targets}


def gallery(w: Wiring, users: list[str] | None, out_dir: Path, *, everyone: bool = False) -> dict[str, Any]:
    from ..gallery import UserTimeline, write_gallery

    uids = list(user_ids(w)) if everyone else [validate_user_id(u) for u in users or []]
    if not uids:
        raise UsageError("No users to show.", "Pass --user U (repeatable) or --all.")
    table = w.configs.stages
    order = [*table.names, *table.trilogy]
    labels = {t: w.configs.label(t) for t in order}
    days = {s: table.get(s).from_day for s in table.names}
    timelines = [UserTimeline(persona(w, u), timeline(w, u), labels, order, days, _hidden(w, u)) for u in uids]
    if everyone:
        timelines = [t for t in timelines if t.records]
    name = "gallery-all" if everyone else f"gallery-{'-'.join(uids)}"
    title = "Mirror Realm · all users" if everyone else "Mirror Realm · " + ", ".join(t.persona.name for t in timelines)
    return write_gallery(timelines, w.store, out_dir, name, title)

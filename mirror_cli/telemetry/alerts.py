"""Warnings before the money is gone: budget thresholds (each once a month) and a run's failure
rate (once per run), raised in the run summary, the nightly run's exit code (9), /metrics and
an optional signed webhook.

"Once" holds across runs, processes and shards: an alert is a ledger line whose id names the
threshold and the month (or the run), and the ledger writes an id once (both stores). Only the
process whose write created the line reports it as new.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import redact, register_secret
from ..models import LedgerEvent
from . import hooks

if TYPE_CHECKING:
    from datetime import datetime

    from ..config import LimitsConfig
    from ..pipeline import RunReport
    from ..stores.base import Store

log = logging.getLogger("mirror.alerts")
SYSTEM_USER = "_system"  # the ledger's "user" of alert lines (no real user: a budget is everybody's)


@dataclass
class Alert:
    kind: Literal["budget", "failure_rate"]
    key: str  # what makes it fire once: the threshold and the month, or the run
    threshold: float
    value: float
    message: str
    webhook: str | None = None  # "sent", "failed", "no secret" (None: no webhook configured)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_alerts(limits: LimitsConfig, month: str, spent_usd: float) -> list[Alert]:
    """Every budget threshold the month's spend has reached (new or not)."""
    budget = limits.monthly_budget_usd
    if budget <= 0:
        return []
    used = spent_usd / budget
    return [
        Alert(
            "budget",
            f"budget:{month}:{t:g}",
            t,
            round(used, 4),
            f"Spend this month ${spent_usd:.2f} reached {used:.0%} of the ${budget:.2f} budget "
            f"(threshold {t:.0%}): lower the quality, run through the Batch API, or raise monthly_budget_usd.",
        )
        for t in limits.alerts.budget_thresholds
        if used >= t
    ]


def failure_alert(limits: LimitsConfig, report: RunReport) -> Alert | None:
    cfg = limits.alerts
    ran = sum(1 for o in report.outcomes if o.status not in ("skipped", "planned"))
    if ran < cfg.failure_rate_min_jobs or ran == 0:
        return None
    rate = report.failed / ran
    if rate <= cfg.failure_rate:
        return None
    where = f"see 'mirror runs show {report.run_id}' for their reasons" if report.run_id else "see the run's report"
    return Alert(
        "failure_rate",
        f"failure_rate:{report.run_id or 'run'}",
        cfg.failure_rate,
        round(rate, 4),
        f"{report.failed} of {ran} jobs failed ({rate:.0%}, threshold {cfg.failure_rate:.0%}): {where}.",
    )


def fire_once(store: Store, alerts: list[Alert], now: datetime, run_id: str | None) -> list[Alert]:
    """The alerts not raised before (their ledger line is written now); counted in /metrics."""
    new = []
    for a in alerts:
        event = LedgerEvent(ts=now, user_id=SYSTEM_USER, kind="alert", run_id=run_id, detail=a.message)
        if store.record_event(event, event_id=f"alert:{a.key}"):
            new.append(a)
            sink = hooks.attached()
            counter = getattr(sink, "alerts", None)
            if counter is not None:
                counter.labels(a.kind).inc()
    return new


def notify(limits: LimitsConfig, alerts: list[Alert], source: str) -> None:
    """Send each new alert to the webhook, if one is configured (bounded; never raises)."""
    cfg = limits.alerts
    if not alerts or not cfg.webhook_url:
        return
    from .webhook import SECRET_ENV, deliver_all

    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        for a in alerts:
            a.webhook = f"not sent: {SECRET_ENV} is not set"
        return
    register_secret(secret)

    payloads = [{"source": source, **a.to_dict()} for a in alerts]
    sent = deliver_all(
        cfg.webhook_url, payloads, secret, timeout_s=cfg.webhook_timeout_s, attempts=cfg.webhook_attempts
    )
    for a, ok in zip(alerts, sent, strict=True):
        a.webhook = "sent" if ok else "failed"


def run_alerts(store: Store, limits: LimitsConfig, report: RunReport, now: datetime) -> list[Alert]:
    """``check_run``, or no alert when the store cannot say (the run's outcome stands as it is)."""
    try:
        return check_run(store, limits, report, now)
    except Exception as exc:
        log.warning("alerts not checked: %s", redact(f"{type(exc).__name__}: {exc}"))
        return []


def check_run(store: Store, limits: LimitsConfig, report: RunReport, now: datetime) -> list[Alert]:
    """After a run: the month's budget thresholds and the run's failure rate; the new ones are
    returned (and sent). A store that cannot be read leaves the run's outcome as it was."""
    month = now.strftime("%Y-%m")
    candidates = budget_alerts(limits, month, store.month_paid_usd(month, None))
    failing = failure_alert(limits, report)
    if failing is not None:
        candidates.append(failing)
    new = fire_once(store, candidates, now, report.run_id)
    notify(limits, new, "run")
    return new

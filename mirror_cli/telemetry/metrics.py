"""Prometheus metrics (prometheus-client): what `mirror serve` exposes at /metrics and what a
nightly run writes to a file or pushes to a Pushgateway.

Names follow the Prometheus conventions: a ``mirror_`` prefix, base units in the name (seconds,
USD), ``_total`` on counters. Labels are bounded: route templates (never a raw path), HTTP
methods and statuses, job outcomes, pipeline steps, provider and model names from the configs,
alert kinds. Never a user id, a request key or an avatar id.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from . import hooks

if TYPE_CHECKING:
    from ..models import ImageResult
    from ..pipeline import Outcome, RunReport

# Seconds: a cached answer takes milliseconds, a generation tens of seconds, a batch job hours.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 120, 300)
STEPS = ("queue_wait", "provider", "post_process", "store", "total")


class Metrics:
    """One registry of the process's metrics; also the pipeline's telemetry sink."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "mirror_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.http_duration = Histogram(
            "mirror_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.jobs = Counter("mirror_jobs", "Jobs finished, by outcome", ["outcome"], registry=r)
        self.job_step = Histogram(
            "mirror_job_step_duration_seconds",
            "Where a job's time went: queue wait, provider, post-processing, store, total",
            ["step"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.provider_latency = Histogram(
            "mirror_provider_latency_seconds",
            "One answered provider request, as the provider measured it",
            ["provider", "model"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.spend = Counter("mirror_spend_usd", "Confirmed spend on images, in USD", ["provider"], registry=r)
        self.may_have_billed = Counter(
            "mirror_may_have_billed_usd", "Requests sent and never answered, at their estimate, in USD", registry=r
        )
        self.retries = Counter("mirror_provider_retries", "Provider requests retried", registry=r)
        self.rate_limited = Counter("mirror_provider_rate_limited", "Provider answers 429 (rate limit)", registry=r)
        self.unanswered = Counter("mirror_provider_unanswered", "Provider requests never answered", registry=r)
        self.alerts = Counter("mirror_alerts", "Threshold warnings raised", ["kind"], registry=r)
        for kind in ("budget", "failure_rate"):  # present at 0 from the start: alert rules see a series
            self.alerts.labels(kind)
        self.budget_usd = Gauge("mirror_budget_usd", "The monthly budget (limits.yaml)", registry=r)
        self.month_spend_usd = Gauge(
            "mirror_month_spend_usd", "Spend this month from the store, may-have-billed included", registry=r
        )
        self.budget_headroom_usd = Gauge(
            "mirror_budget_headroom_usd", "Monthly budget left (negative: over budget)", registry=r
        )
        self.queue_depth = Gauge("mirror_queue_depth", "Generations running or waiting in this process", registry=r)
        self._budget_read_at = 0.0

    # ------------------------------------------------------------------------ pipeline sink
    def job_finished(self, outcome: Outcome) -> None:
        self.jobs.labels(outcome.status).inc()
        if outcome.cost_usd > 0 and outcome.record is not None:
            self.spend.labels(outcome.record.provider).inc(outcome.cost_usd)
        if outcome.may_have_billed_usd > 0:
            self.may_have_billed.inc(outcome.may_have_billed_usd)
        t = outcome.timings
        if t is None:
            return
        for name in STEPS:
            value = getattr(t, f"{name}_s")
            if value is not None:
                self.job_step.labels(name).observe(value)

    def run_finished(self, report: RunReport) -> None:
        s = report.retries
        self.retries.inc(s.retries)
        self.rate_limited.inc(s.rate_limited)
        self.unanswered.inc(s.unanswered)

    def provider_answered(self, result: ImageResult) -> None:
        self.provider_latency.labels(result.provider, result.model).observe(result.latency_s)

    # ------------------------------------------------------------------------------ gauges
    def budget_due(self, every_s: float = 60.0) -> bool:
        """Is the month's spend worth reading again? (a Firestore read costs up to 64 reads)"""
        return time.monotonic() - self._budget_read_at >= every_s

    def set_budget(self, budget_usd: float, month_spend_usd: float) -> None:
        self._budget_read_at = time.monotonic()
        self.budget_usd.set(budget_usd)
        self.month_spend_usd.set(month_spend_usd)
        self.budget_headroom_usd.set(budget_usd - month_spend_usd)

    def exposition(self) -> tuple[bytes, str]:
        """The registry in the text format Prometheus scrapes: (body, content type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def start(registry: CollectorRegistry | None = None) -> Metrics:
    """A process's metrics, fed by every pipeline from now on."""
    metrics = Metrics(registry)
    hooks.attach(metrics)
    return metrics


def stop(metrics: Metrics) -> None:
    if hooks.attached() is metrics:
        hooks.attach(None)


def run_registry(summary: dict[str, Any], report: RunReport, alerts: list[dict[str, Any]]) -> CollectorRegistry:
    """A finished run as gauges (the Pushgateway convention: a batch job pushes its last state)."""
    registry = CollectorRegistry()
    jobs = Gauge("mirror_run_jobs", "Jobs of the last run, by outcome", ["outcome"], registry=registry)
    for outcome in ("generated", "cached", "ingested", "degraded", "failed", "skipped"):
        jobs.labels(outcome).set(summary.get(outcome, 0))
    Gauge("mirror_run_spend_usd", "Confirmed spend of the last run", registry=registry).set(summary["cost_usd"])
    Gauge("mirror_run_may_have_billed_usd", "Unanswered requests of the last run, at estimate", registry=registry).set(
        summary["may_have_billed_usd"]
    )
    Gauge("mirror_run_duration_seconds", "Wall time of the last run", registry=registry).set(summary["elapsed_s"])
    for name, key in (("retries", "retries"), ("rate_limited", "rate_limited"), ("unanswered", "unanswered")):
        Gauge(
            f"mirror_run_provider_{name}",
            f"Provider requests {name.replace('_', ' ')} in the last run",
            registry=registry,
        ).set(summary.get(key, 0))
    steps = Gauge(
        "mirror_run_job_step_p95_seconds",
        "95th percentile of each job step in the last run",
        ["step"],
        registry=registry,
    )
    from ..kpis import percentile

    for name in STEPS:
        values = [getattr(o.timings, f"{name}_s") for o in report.outcomes if o.timings is not None]
        p95 = percentile([v for v in values if v is not None], 0.95)
        if p95 is not None:
            steps.labels(name).set(p95)
    fired = Gauge("mirror_run_alerts", "Threshold warnings raised by the last run", ["kind"], registry=registry)
    for kind in ("budget", "failure_rate"):
        fired.labels(kind).set(sum(1 for a in alerts if a["kind"] == kind))
    Gauge(
        "mirror_run_last_finished_timestamp_seconds", "When the last run finished", registry=registry
    ).set_to_current_time()
    return registry

"""`mirror serve`'s observability, wired in one call: /metrics, the observation middleware,
tracing from the OTLP settings, the pipeline's metrics sink."""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from . import tracing
from .http import Observe
from .metrics import Metrics, start, stop

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..core import Mirror

log = logging.getLogger("mirror.serve")


def install(
    app: FastAPI, core: Mirror, queue_depth: Any, token: str | None = None, *, enabled: bool = True
) -> Metrics | None:
    """Expose /metrics (asking for ``Authorization: Bearer <token>`` when a token is set) and
    observe every request. Call it after the app's other middlewares: it wraps them all. With
    metrics off (serve_metrics: false) only tracing, if configured, observes requests."""
    tracing.configure_from_env()
    if not enabled:
        if tracing.enabled():
            app.add_middleware(Observe, metrics=None)
        return None
    metrics = start()
    metrics.queue_depth.set_function(queue_depth)
    app.state.metrics = metrics

    async def scrape(request: Request) -> Response:
        given = request.headers.get("authorization", "")
        if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        if metrics.budget_due():
            try:
                month = core.now().strftime("%Y-%m")
                spent = await core.store_calls(core.store.month_paid_usd, month, None)
                metrics.set_budget(core.configs.limits.monthly_budget_usd, spent)
                await core.store_calls(_budget_alerts, core, month, spent)
            except Exception as exc:  # the other metrics still answer; the gauges keep their last values
                log.warning("metrics: the month's spend could not be read (%s)", type(exc).__name__)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(Observe, metrics=metrics)
    return metrics


def uninstall(app: FastAPI) -> None:
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        stop(metrics)


def _budget_alerts(core: Mirror, month: str, spent: float) -> None:
    """A budget threshold crossed by the app's own requests warns once (the same ledger ids as the
    nightly run's), counted in mirror_alerts_total; its webhook goes out in a thread of its own."""
    import threading

    from .alerts import budget_alerts, fire_once, notify

    limits = core.configs.limits
    new = fire_once(core.store, budget_alerts(limits, month, spent), core.now(), None)
    for alert in new:
        log.warning("%s", alert.message)
    if new and limits.alerts.webhook_url:
        threading.Thread(target=notify, args=(limits, new, "serve"), name="mirror-alert-webhook", daemon=True).start()

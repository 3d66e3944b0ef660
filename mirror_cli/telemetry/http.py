"""The server's observation middleware (plain ASGI): request counts and latency by route
template and status, one SERVER span per request when tracing is on, and the request's trace id
for its log lines. The route is the matched template (``/api/v1/avatar/user/{user_id}``), never
the raw path, so no user id becomes a label or a span name."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import logs, tracing
from .metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"  # 404s and anything no route took: one label value for all of them


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def route_of(scope: Scope) -> str:
    """The matched route's full template. A route of an included router may know only its own
    part (``/avatar/user/{user_id}``): the router's prefix is what the request path has before it."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    params = scope.get("path_params") or {}
    filled = _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)
    path = str(scope.get("path", ""))
    if filled and path.endswith(filled) and "{" not in path[: len(path) - len(filled)]:
        return path[: len(path) - len(filled)] + template
    return template


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        traceparent = None
        for name, value in scope.get("headers", ()):
            if name == b"traceparent":
                traceparent = value.decode("latin-1")
                break

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = logs.set_incoming(traceparent)
        method = scope["method"]
        try:
            if not tracing.enabled():
                await self.app(scope, receive, sending)
                return
            carrier = {"traceparent": traceparent} if traceparent else {}
            with tracing.server_span(f"{method}", carrier, {"http.request.method": method}) as span:
                try:
                    await self.app(scope, receive, sending)
                finally:
                    route = route_of(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        from opentelemetry.trace import StatusCode

                        span.set_status(StatusCode.ERROR)
        finally:
            logs.reset_incoming(token)
            if self.metrics is not None:
                route = route_of(scope)
                self.metrics.http_requests.labels(route, method, str(status)).inc()
                self.metrics.http_duration.labels(route, method).observe(time.perf_counter() - started)

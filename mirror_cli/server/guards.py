"""What stands between the network and the core: per-user request rates, body sizes, access logs.

The two middlewares are plain ASGI (no per-request task or body copy), so they cost microseconds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..telemetry import logs
from .problems import MEDIA_TYPE, Problem, ProblemError, problem_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RateLimiter:
    """A token bucket per signed-in user: ``per_minute`` requests a minute, bursts up to the same."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, uid: str) -> None:
        now = self.clock()
        tokens, last = self._buckets.get(uid, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / self.rate)
            self._buckets[uid] = (tokens, now)
            raise ProblemError(
                429,
                "rate-limited",
                "Too many requests",
                f"More than {int(self.burst)} requests a minute from this user.",
                f"Wait {wait} s (Retry-After) and retry; the app should not retry in a tight loop.",
                retry_after_s=wait,
            )
        self._buckets[uid] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget idle users (their buckets are full again anyway)
            cutoff = now - self.burst / self.rate
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] >= cutoff}


async def limit_unauthenticated(core: Any, address: str, per_minute: int) -> None:
    """Requests that end unauthenticated count against their client address, in the store (every
    instance shares the count; the address itself is never stored): 429 past ``per_minute``."""
    from ..clock import wall_clock
    from ..errors import MirrorError
    from ..stores.rates import ip_bucket

    try:
        got = await core.store_calls(
            core.store.take_rate, ip_bucket(address), 60.0 / per_minute, per_minute, 0.0, wall_clock().timestamp()
        )
    except MirrorError as err:  # the store unreachable: the request is refused anyway (401)
        logging.getLogger("mirror.serve").warning("the address rate could not be taken: %s", err.message)
        return
    if not got.taken:
        wait = max(1, math.ceil(got.wait_s))
        raise ProblemError(
            429,
            "rate-limited",
            "Too many requests",
            f"More than {per_minute} unauthenticated requests a minute from this address.",
            f"Sign in and send 'Authorization: Bearer <ID token>'; wait {wait} s (Retry-After) before retrying.",
            retry_after_s=wait,
        )


async def send_problem(send: Send, problem: Problem) -> None:
    body = problem.model_dump_json(exclude_none=True).encode()
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem_headers(problem).items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a body larger than the limit: by Content-Length before reading, and by counting
    the bytes of a chunked body as they arrive. ``limit_for(path)`` gives each route its limit."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        too_large = _too_large(limit)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await send_problem(send, too_large())
                    return
        seen = 0
        started = over = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if over:  # the app's own answer to the cut-off body (a parse error, 400) becomes the 413
                if not started:
                    started = True
                    await send_problem(send, too_large())
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted, tracking)
        if over and not started:
            await send_problem(send, too_large())


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> Callable[[], Problem]:
    def problem() -> Problem:
        return ProblemError(
            413,
            "too-large",
            "Request too large",
            f"The request body is larger than {limit:,} bytes.",
            "Send a smaller photo (or body); photos must be under the size limit of the CLI's intake.",
        ).problem

    return problem


_access = logging.getLogger("mirror.access")


class AccessLog:
    """One JSON line per request on stderr: method, path, status, duration, the caller's uid when
    known, a request id. Never headers, query strings, bodies, tokens or keys."""

    def __init__(self, app: ASGIApp, stream: Any = None) -> None:
        self.app = app
        self.stream = stream or sys.stderr

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ms = round((time.perf_counter() - started) * 1000, 2)
            # severity, message and the trace field for Cloud Logging (telemetry/logs.py)
            line = logs.line(
                "ERROR" if status >= 500 else ("WARNING" if status >= 400 else "INFO"),
                f"{scope['method']} {scope['path']} {status} {ms} ms",
                ts=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                kind="access",
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],  # no query string: it could carry a token
                status=status,
                ms=ms,
                uid=scope["state"].get("uid"),
            )
            self.stream.write(line + "\n")

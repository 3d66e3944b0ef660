"""Concurrency, images/min and tokens/min pacing, and the retry policy.

The SDK's own retries are switched off (``max_retries=0``): it retries quota errors that will
never succeed and gives up on long Retry-After values. Here every attempt is paced, every wait is
visible, and only failures that can succeed later are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from .config import RetryPolicy

FailureKind = Literal["transient", "stop", "moderation", "bad_request"]


class ProviderFailure(Exception):
    """One failed provider call, classified for the retry policy.

    transient: retry with backoff (429 rate limits, 5xx, timeouts, dropped connections)
    stop: the whole run must stop (insufficient quota, billing limit, 401, 403, retired model)
    moderation: the safety system refused the prompt; never retried as is
    bad_request: this job cannot succeed as sent
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.request_id = request_id


_TRY_AGAIN = re.compile(r"try again (?:in|after) ([0-9.]+)\s*(ms|s|seconds?)?", re.IGNORECASE)
_DURATION = re.compile(r"([0-9.]+)(ms|h|m|s)")


def parse_try_again(message: str) -> float | None:
    """'...Please try again in 7.2s' / 'try again after 51.84 seconds' -> seconds."""
    m = _TRY_AGAIN.search(message or "")
    if not m:
        return None
    value = float(m.group(1))
    return value / 1000 if (m.group(2) or "").lower() == "ms" else value


def parse_duration(text: str) -> float | None:
    """x-ratelimit-reset-* values such as '1s', '6m0s', '120ms', '1h2m3s' -> seconds."""
    parts = _DURATION.findall(text or "")
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(v) * scale[u] for v, u in parts)


def parse_retry_after(headers: dict[str, str]) -> float | None:
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        try:
            return float(lower["retry-after-ms"]) / 1000
        except ValueError:
            pass
    if "retry-after" in lower:
        try:
            return float(lower["retry-after"])
        except ValueError:
            return None
    return None


@dataclass
class RateLimiter:
    """Paced starts: evenly spaced (a GCRA with no burst) and, on top, a sliding-window log, so no
    window of ``window_s`` (plus a margin for the jitter between a start here and its arrival at
    the server) ever holds more than N starts; never more than ``tokens_per_minute`` tokens.

    The rate is learned downwards: an ``x-ratelimit-limit-requests`` header below it, or a 429
    rate-limit answer (rate x0.75 each time), lowers it for the rest of the run.
    ``window_s`` scales the minute, so benchmarks and tests can run the same logic faster.
    """

    images_per_minute: float | None = None
    tokens_per_minute: float | None = None
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # the images' spacing shared by every process (the store's rate, ``Wiring.pipeline``): given
    # the spacing, it reserves the next start and returns how long to wait for it
    shared: Callable[[float], Awaitable[float]] | None = None
    _next_image: float = 0.0
    _next_token: float = 0.0
    _paused_until: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    starts: list[float] = field(default_factory=list)
    lowered: list[tuple[float, str]] = field(default_factory=list)  # (new rate, why)

    SAFETY = 1.01  # 1% slack on the spacing
    BACKOFF = 0.75  # the rate after a 429, as a share of the rate before

    @property
    def margin_s(self) -> float:
        """Jitter allowance between a start here and its arrival at the server."""
        return min(0.5 + 0.02 * self.window_s, 0.1 * self.window_s)

    async def acquire(self, tokens: int = 0) -> None:
        if self.shared is not None and self.images_per_minute:
            await self._acquire_shared(tokens)
            return
        async with self._lock:
            now = self.clock()
            at = max(now, self._next_image, self._next_token, self._paused_until)
            if self.images_per_minute:
                n = max(1, math.floor(self.images_per_minute))
                if len(self.starts) >= n:
                    at = max(at, self.starts[-n] + self.window_s + self.margin_s)
                self._next_image = at + self.window_s / self.images_per_minute * self.SAFETY
            if self.tokens_per_minute and tokens:
                self._next_token = at + self.window_s * tokens / self.tokens_per_minute * self.SAFETY
            self.starts.append(at)
            if at > now:
                await self.sleep(at - now)

    async def _acquire_shared(self, tokens: int) -> None:
        """The images' start slot comes from the store (every process shares it), taken only once
        a pause (a 429's Retry-After) is over, so the starts after a pause stay spaced."""
        assert self.shared is not None and self.images_per_minute
        while (pause := self._paused_until - self.clock()) > 0:
            await self.sleep(pause)
        if self.tokens_per_minute and tokens:
            async with self._lock:
                now = self.clock()
                at = max(now, self._next_token)
                self._next_token = at + self.window_s * tokens / self.tokens_per_minute * self.SAFETY
            if at > now:
                await self.sleep(at - now)
        # spaced so that the window plus the jitter allowance holds the limit
        wait = await self.shared((self.window_s + self.margin_s) / self.images_per_minute)
        self.starts.append(self.clock() + max(0.0, wait))
        if wait > 0:
            await self.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every start for ``seconds`` (a 429 or an exhausted x-ratelimit budget)."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def _lower(self, rate: float, why: str) -> None:
        rate = max(1.0, rate)
        if self.images_per_minute is None or rate < self.images_per_minute - 1e-9:
            self.images_per_minute = rate
            self.lowered.append((round(rate, 3), why))
            # the next start keeps the new spacing from the latest one
            if self.starts:
                self._next_image = max(self._next_image, self.starts[-1] + self.window_s / rate * self.SAFETY)

    def rate_limited(self) -> None:
        """The server answered 429 (rate limit, not quota): it allows less than we send."""
        if self.images_per_minute:
            self._lower(self.images_per_minute * self.BACKOFF, "429 rate limit")
        else:
            now = self.clock()
            recent = sum(1 for t in self.starts if t > now - self.window_s)
            self._lower(max(1.0, recent * self.BACKOFF), "429 rate limit")

    def observe_headers(self, headers: dict[str, str]) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        limit = lower.get("x-ratelimit-limit-requests")
        if limit is not None:
            with contextlib.suppress(ValueError):
                value = float(limit)
                if value > 0:
                    self._lower(value, "x-ratelimit-limit-requests")
        for kind in ("requests", "tokens"):
            remaining = lower.get(f"x-ratelimit-remaining-{kind}")
            reset = parse_duration(lower.get(f"x-ratelimit-reset-{kind}", ""))
            if remaining is not None and reset:
                try:
                    if float(remaining) <= 0:
                        self.pause(reset)
                except ValueError:
                    continue


T = TypeVar("T")


@dataclass
class RetryStats:
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    unanswered: int = 0  # timeouts and dropped answers: requests the provider may have billed


UNANSWERED = {"timeout", "dropped"}


def may_have_billed(failure: ProviderFailure) -> bool:
    """A request that reached the provider and whose answer never arrived: the API has no
    idempotency key, so it may have been billed."""
    return failure.code in UNANSWERED


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: base*2^n, capped, scaled by a random 0.5..1."""
    jitter = (rng.random() if rng else random.random()) / 2
    raw = min(policy.max_delay_s, policy.base_delay_s * (2**attempt))
    return float(raw * (0.5 + jitter))


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    tokens: int = 0,
    stats: RetryStats | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_unanswered: Callable[[ProviderFailure], Awaitable[None]] | None = None,
) -> T:
    """Run ``call`` under the limiter; retry transient ProviderFailures, re-raise the rest.

    A request left unanswered (timeout, dropped answer) may have been billed: ``on_unanswered``
    books it, and it is retried at most ``policy.max_unanswered_retries`` times."""
    stats = stats or RetryStats()
    attempt = 0
    unanswered = 0
    while True:
        if limiter:
            await limiter.acquire(tokens)
        stats.attempts += 1
        try:
            return await call()
        except ProviderFailure as failure:
            if failure.status == 429:
                stats.rate_limited += 1
                if limiter and failure.code not in ("insufficient_quota",) and failure.kind == "transient":
                    limiter.rate_limited()
            if may_have_billed(failure):
                stats.unanswered += 1
                unanswered += 1
                if on_unanswered:
                    await on_unanswered(failure)
                if unanswered > policy.max_unanswered_retries:
                    raise
            if failure.kind != "transient" or attempt + 1 >= policy.max_attempts:
                raise
            if failure.retry_after is not None and failure.retry_after > policy.max_retry_after_s:
                raise
            delay = backoff_delay(policy, attempt)
            if failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
                if limiter:
                    limiter.pause(delay)
            stats.retries += 1
            stats.waited_s += delay
            attempt += 1
            await sleep(delay)

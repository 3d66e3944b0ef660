"""What one core holds open: settings and configs, the clock, the store, the provider, the spool,
the fallback set, and how planners and pipelines are built from them. The use cases
(``usecases/``) work on a ``Wiring``; ``core.Mirror`` is the facade the edges call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from .clock import Clock, parse_instant, starting_at, system_clock, today, wall_clock
from .config import ConfigSet, RateLimit
from .fallbacks import FallbackSet
from .pacing import RateLimiter
from .pipeline import Outcome, Pipeline
from .planner import Planner
from .providers.base import ImageProvider, ProviderContext, get_provider
from .settings import Settings
from .spool import Spool
from .stores.base import Store, get_store
from .stores.calls import StoreCalls
from .stores.queue import JobQueue, get_queue
from .telemetry import tracing

T = TypeVar("T")


class Wiring:
    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
        on_planned: Callable[[int], None] | None = None,
        owns_process: bool = True,
    ) -> None:
        """``owns_process``: a CLI command owns its process, so each call sweeps the spool and turns
        SIGINT/SIGTERM into a graceful stop. A server (one core, many concurrent calls) sweeps once
        with ``asweep_spool`` and leaves signals to its own server."""
        self.settings = settings
        self.owns_process = owns_process
        self.configs = ConfigSet(settings.config_dir, settings.style)
        self.configs.validate_all()
        tracing.configure_from_env()  # spans by OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT names a collector
        self.now: Clock = now or (starting_at(parse_instant(settings.now)) if settings.now else system_clock)
        self.on_progress = on_progress
        # Told the number of jobs a command is about to run (before the first one finishes).
        self.on_planned = on_planned
        # Dry runs only estimate: the provider may lack credentials (e.g. no API key yet).
        self.estimating = False
        self._provider: ImageProvider | None = None

    @cached_property
    def store(self) -> Store:
        return get_store(self.settings.store, self.settings)

    @cached_property
    def queue(self) -> JobQueue:
        """The job queue `mirror worker` pulls from (settings.queue; local: the store's SQLite)."""
        return get_queue(self.settings.queue, self.settings)

    @property
    def provider(self) -> ImageProvider:
        if self._provider is None:
            ctx = ProviderContext(self.settings, self.configs, {"estimate_only": self.estimating})
            self._provider = get_provider(self.settings.provider, ctx)
        return self._provider

    @property
    def model_name(self) -> str:
        if self.settings.model:
            return self.settings.model
        if self.settings.provider == "local":
            return "local"
        return self.configs.style.model or self.configs.models.default

    @cached_property
    def spool(self) -> Spool:
        return Spool(self.settings.data_dir / "spool")

    @cached_property
    def fallbacks(self) -> FallbackSet:
        from .resources import shipped_fallback_dir
        from .review import StoreApprover

        style = self.configs.style.name
        approver = StoreApprover(lambda: self.store, style)  # only approved assets are served
        return FallbackSet([self.settings.fallback_dir, shipped_fallback_dir()], style, approver)

    def planner(self) -> Planner:
        return Planner(
            self.configs,
            self.store,
            self.provider,
            self.settings.provider,
            self.model_name,
            self.settings.quality,
            self.settings.size,
            today=today(self.now),
        )

    def pipeline(self, planner: Planner | None = None, max_cost: float | None = None) -> Pipeline:
        limits = self.configs.limits
        rate = limits.rate_limits.get(self.model_name)
        limiter = (
            RateLimiter(rate.images_per_minute, rate.tokens_per_minute, rate.window_s, shared=self._shared_pace)
            if rate
            else None
        )
        if limiter is None and self.settings.provider != "local":
            limiter = RateLimiter()  # no configured rate: paced only once the server says its limit
        return Pipeline(
            self.configs,
            self.store,
            self.provider,
            planner or self.planner(),
            self.spool,
            self.fallbacks,
            concurrency=self.settings.concurrency or self._default_concurrency(rate),
            limiter=limiter,
            max_cost=max_cost if max_cost is not None else (self.settings.max_cost or limits.max_cost_per_run_usd),
            now=self.now,
            on_progress=self.on_progress,
            io=self.store_calls,
        )

    @cached_property
    def store_calls(self) -> StoreCalls:
        """Store calls from coroutines run here, off the event loop; one pool per core, shared by
        every pipeline (a server makes one pipeline per request)."""
        concurrency = self.settings.concurrency or self.configs.limits.concurrency
        # One store method (a few RPCs) gets the store's timeout plus its retry budget, in all.
        return StoreCalls(
            workers=max(4, 2 * concurrency) if self.owns_process else 32,
            deadline_s=self.settings.store_timeout_s + self.settings.store_retry_s,
            stall_s=self.settings.store_timeout_s,
        )

    async def _shared_pace(self, interval_s: float) -> float:
        """The images' spacing across every process on this store (its rate record for the model):
        the next start is reserved; how long from now to wait for it."""
        bucket = f"images.{self.model_name}"
        while True:
            asked = wall_clock().timestamp()
            got = await self.store_calls(self.store.take_rate, bucket, interval_s, 1, 3600.0, asked)
            if got.taken:  # from now, not from the asking: the store call's own time is spent
                return float(asked + got.wait_s - wall_clock().timestamp())
            await asyncio.sleep(min(60.0, got.wait_s))  # over an hour of starts reserved ahead: look again

    def _default_concurrency(self, rate: RateLimit | None) -> int:
        """The provider decides: one job per core for a local renderer, the pacing limit
        (images per minute, at most limits.concurrency) for an API."""
        own = getattr(self.provider, "default_concurrency", None)
        if isinstance(own, int) and own > 0:
            return own
        limit = self.configs.limits.concurrency
        return max(1, min(limit, int(rate.images_per_minute))) if rate else limit

    def close(self) -> None:
        stalled = False
        if "store_calls" in self.__dict__:
            stalled = self.store_calls.down is not None
            self.store_calls.close()
            del self.__dict__["store_calls"]
        if "queue" in self.__dict__:
            self.queue.close()
            del self.__dict__["queue"]
        if "store" in self.__dict__ and not stalled:  # a stalled store would hold the exit
            self.store.close()  # flushes the operation counts: one write per run

    async def aclose(self) -> None:
        """Close the provider's HTTP client (in the loop that used it), then the store."""
        if self._provider is not None:
            await self._provider.aclose()
        self.close()

    def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """The one runner of the sync API: one event loop per core call; the provider's HTTP
        client lives and closes inside it."""

        async def wrapped() -> T:
            try:
                return await coro
            finally:
                if self._provider is not None:
                    await self._provider.aclose()

        return asyncio.run(wrapped())

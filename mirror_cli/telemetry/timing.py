"""The pipeline's measuring hook: one clock per job, laps at its step boundaries.

``job_clock`` is entered around one job; ``step(name)`` around a step of it (claim, reserve,
provider, settle, post_process, store). Each step adds its duration to the job's clock and,
when tracing is on, is a child span of the job's span. The clock lives in a context variable, so
concurrent jobs (one asyncio task per user) never mix their laps, and code run in a worker
thread with ``asyncio.to_thread`` sees its job's clock too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..models import JobTimings
from . import tracing

# Steps whose durations are fields of JobTimings; the others are only spans and step metrics.
TIMED_STEPS = ("provider", "post_process", "store")


class JobClock:
    def __init__(self, queued_at: float | None = None) -> None:
        self.started = time.perf_counter()
        self.queue_wait_s = max(0.0, self.started - queued_at) if queued_at is not None else None
        self.laps: dict[str, float] = {}

    def add(self, step: str, seconds: float) -> None:
        self.laps[step] = self.laps.get(step, 0.0) + seconds

    def timings(self) -> JobTimings:
        """The figures so far: total is the time since the job started."""
        return JobTimings(
            queue_wait_s=_r(self.queue_wait_s),
            provider_s=_r(self.laps.get("provider")),
            post_process_s=_r(self.laps.get("post_process")),
            store_s=_r(self.laps.get("store")),
            total_s=_r(time.perf_counter() - self.started),
        )


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


_clock: ContextVar[JobClock | None] = ContextVar("mirror_job_clock", default=None)


@contextmanager
def job_clock(queued_at: float | None = None, **attributes: Any) -> Iterator[JobClock]:
    """Measure one job (and trace it as ``mirror.job`` when tracing is on)."""
    clock = JobClock(queued_at)
    token = _clock.set(clock)
    try:
        with tracing.span("mirror.job", attributes):
            yield clock
    finally:
        _clock.reset(token)


@contextmanager
def step(name: str) -> Iterator[None]:
    """One step of the current job: timed, and a span when tracing is on."""
    started = time.perf_counter()
    try:
        with tracing.span(f"mirror.{name}"):
            yield
    finally:
        clock = _clock.get()
        if clock is not None:
            clock.add(name, time.perf_counter() - started)


def current() -> JobTimings | None:
    """The current job's figures so far (None outside a job, e.g. a leftover spool file)."""
    clock = _clock.get()
    return clock.timings() if clock is not None else None

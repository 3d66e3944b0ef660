"""The pipeline schedules jobs and nothing else: users run concurrently (up to ``concurrency``),
one user's jobs in order (later stages reference earlier ones), a stop request ends the run
between jobs, and each finished job is reported as it ends. A job's own life is in ``life``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..clock import system_clock, wall_clock
from ..errors import StoreError
from ..pacing import RateLimiter
from ..stores.base import Caps, RunInfo
from ..stores.calls import StoreCalls
from ..telemetry import hooks
from ..telemetry.timing import job_clock
from . import recovery
from .claims import new_owner
from .context import JobContext
from .life import JobLife
from .money import Money
from .recovery import ingest_leftovers, note_interrupted
from .types import JobSpec, Outcome, RunReport, plan

if TYPE_CHECKING:
    from ..config import ConfigSet
    from ..fallbacks import FallbackSet
    from ..models import ImageResult, Persona
    from ..planner import Job, Planner
    from ..providers.base import ImageProvider
    from ..spool import Spool
    from ..stores.base import Store
    from ..validate import Verdict


class Pipeline:
    def __init__(
        self,
        configs: ConfigSet,
        store: Store,
        provider: ImageProvider,
        planner: Planner,
        spool: Spool,
        fallbacks: FallbackSet,
        *,
        concurrency: int = 4,
        limiter: RateLimiter | None = None,
        max_cost: float | None = None,
        caps: Caps | None = None,
        now: Callable[[], datetime] | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
        store_deadline_s: float = 60.0,
        io: StoreCalls | None = None,
    ) -> None:
        lim = configs.limits
        self.ctx = JobContext(
            configs=configs,
            store=store,
            io=io or StoreCalls(workers=max(4, 2 * concurrency), deadline_s=store_deadline_s),
            provider=provider,
            planner=planner,
            spool=spool,
            fallbacks=fallbacks,
            now=now or system_clock,
            wall=wall_clock,  # leases are read by other processes: the machine's time
            owner=new_owner(),
            limiter=limiter,
        )
        self.money = Money(
            self.ctx, max_cost, caps or Caps(lim.per_user_daily, lim.system_daily, lim.monthly_budget_usd)
        )
        self.life = JobLife(self.ctx, self.money)
        self.concurrency = concurrency
        self.on_progress = on_progress
        # what the edges read: the back-ends and the run's state live in the job context
        self.configs, self.store, self.io, self.spool = configs, store, self.ctx.io, spool
        self.provider, self.planner, self.fallbacks = provider, planner, fallbacks
        self.now, self.wall, self.stats = self.ctx.now, self.ctx.wall, self.ctx.stats
        self._earlier_attempts = False  # the run had job states before this attempt

    @property
    def run(self) -> RunInfo | None:
        return self.ctx.run

    @run.setter
    def run(self, run: RunInfo | None) -> None:
        self.ctx.run = run

    @property
    def stop_event(self) -> asyncio.Event:
        return self.ctx.stop_event

    @property
    def stop_reason(self) -> str | None:
        return self.ctx.stop_reason

    @property
    def store_failure(self) -> StoreError | None:
        return self.ctx.store_failure

    def request_stop(self, reason: str) -> None:
        self.ctx.request_stop(reason)

    async def plan_only(self, specs: list[JobSpec], skipped: dict[str, str] | None = None) -> RunReport:
        started = time.perf_counter()
        report = RunReport()
        for spec in specs:
            job = await plan(self.ctx, spec)
            hit = job.existing or await self.life.cache.lookup(job)
            hidden = hit is not None and hit.hidden_by is not None
            hit = None if hidden else hit
            report.outcomes.append(
                Outcome(
                    job.user_id,
                    job.target,
                    "degraded" if hidden else "cached" if hit else "planned",
                    record=hit,
                    served_path=hit.image_path if hit else None,
                    estimate_usd=0.0 if hit or hidden else job.estimate_usd,
                    request_key=job.request_key,
                    reason="; ".join(job.blocked) or None,
                )
            )
        await self._attach_urls(report)
        await self.life.states.skip_users(report, skipped or {}, None)
        report.elapsed_s = time.perf_counter() - started
        return report

    async def run_specs(
        self, specs: list[JobSpec], run: RunInfo | None = None, skipped: dict[str, str] | None = None
    ) -> RunReport:
        """Run every spec; jobs of one user run in order (later stages reference earlier ones),
        users run concurrently up to ``concurrency``."""
        started = time.perf_counter()
        self.run = run
        report = RunReport(run_id=run.id if run else None, retries=self.stats)
        await self.life.states.skip_users(report, skipped or {}, run)
        done_before, self._earlier_attempts = await self.life.states.done_before(run)
        if run:
            fresh = [s for s in specs if s.job_id not in done_before]
            await asyncio.gather(*(self.life.states.put(s, "pending") for s in fresh))
        by_user: dict[str, list[JobSpec]] = {}
        for spec in specs:
            by_user.setdefault(spec.persona.id, []).append(spec)
        sem = asyncio.Semaphore(self.concurrency)

        async def one_user(user_specs: list[JobSpec]) -> None:
            async with sem:
                for spec in user_specs:
                    if spec.job_id in done_before:
                        reason = "done in an earlier attempt of this run"
                        report.outcomes.append(Outcome(spec.persona.id, spec.target, "skipped", reason=reason))
                        continue
                    if self.stop_event.is_set():
                        return
                    with job_clock(started, target=spec.target) as clock:
                        outcome = await self.life.run(spec)
                    outcome.timings = clock.timings()
                    hooks.job_finished(outcome)
                    report.outcomes.append(outcome)
                    if self.on_progress:
                        self.on_progress(outcome)

        # Every user's task runs to its end; an unexpected failure is re-raised once they all have
        # (never left as an unretrieved task exception printed by asyncio).
        results = await asyncio.gather(*(one_user(v) for v in by_user.values()), return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException):
                raise res
        await self._attach_urls(report)
        # A fresh run whose every job reached its end has nothing to settle: skip reading all
        # its job states back (a nightly run's reads stay proportional to its due users).
        ran = sum(1 for o in report.outcomes if o.status != "skipped")
        if self._earlier_attempts or ran < sum(1 for s in specs if s.job_id not in done_before):
            await self.settle_job_states(run)
        report.stopped = self.stop_reason
        report.elapsed_s = time.perf_counter() - started
        hooks.run_finished(report)
        return report

    async def _attach_urls(self, report: RunReport) -> None:
        for o in report.outcomes:
            if o.served_path is None:
                continue
            try:
                o.image_url = (
                    await self.io(self.store.image_url, o.served_path)
                    if o.record is not None and o.served_path == o.record.image_path
                    else Path(o.served_path).resolve().as_uri()
                )
            except Exception:  # noqa: S112 - a URL is a convenience; the path is still reported
                continue

    async def ingest_leftovers(self, persona_of: Callable[[str], Persona]) -> list[Outcome]:
        return await ingest_leftovers(self.life, persona_of)

    async def note_interrupted(self, run: RunInfo | None) -> float:
        return await note_interrupted(self.life, run)

    async def settle_job_states(self, run: RunInfo | None) -> None:
        await self.life.states.settle(run)


async def render_asset(pipeline: Pipeline, job: Job) -> tuple[ImageResult, bytes, Verdict, bool]:
    """Render one shared asset (a fallback) through the pipeline's steps: see recovery.render_asset."""
    return await recovery.render_asset(pipeline.life, job)

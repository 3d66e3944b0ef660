"""The one core every subcommand calls: it decides nothing about presentation, and no command
talks to a provider or a store except through it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from .clock import Clock, parse_instant, starting_at, system_clock, today, wall_clock
from .config import ConfigSet, RateLimit
from .errors import MirrorError, NotFoundError, UnknownUserError, UsageError, as_store_error
from .fallbacks import FallbackSet
from .imaging import Photo, intake_photo, intake_photo_bytes
from .models import Persona, Progress, validate_user_id
from .pacing import RateLimiter
from .pipeline import JobSpec, Outcome, Pipeline, RunReport
from .planner import OK_STATUSES, Planner
from .providers.base import ImageProvider, ProviderContext, get_provider
from .settings import Settings
from .spool import Spool
from .stores.base import DUE_INDEX_VERSION, SHARD_BUCKETS, DueQuery, JobState, RunInfo, Store, get_store, shard_bucket
from .stores.calls import StoreCalls
from .telemetry import tracing
from .telemetry.alerts import run_alerts
from .tick import NightlyTick, TickPlan


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> Shard | None:
        """'i/N' (0-based); falls back to Cloud Run / Kubernetes indexed-job variables."""
        if text:
            try:
                i, n = (int(x) for x in text.split("/"))
            except ValueError:
                raise UsageError(f"Invalid shard {text!r}.", "Use --shard i/N with 0 <= i < N, e.g. 0/4.") from None
        elif "CLOUD_RUN_TASK_INDEX" in os.environ:
            i, n = int(os.environ["CLOUD_RUN_TASK_INDEX"]), int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1"))
        elif "JOB_COMPLETION_INDEX" in os.environ:
            i = int(os.environ["JOB_COMPLETION_INDEX"])
            n = int(os.environ.get("MIRROR_SHARD_COUNT") or os.environ.get("JOB_COMPLETIONS") or "1")
        else:
            return None
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"Invalid shard {i}/{n}.", "The index must satisfy 0 <= i < N.")
        if n > SHARD_BUCKETS:
            raise UsageError(f"Invalid shard {i}/{n}.", f"At most {SHARD_BUCKETS} shards.")
        return cls(i, n)

    @property
    def buckets(self) -> tuple[int, int]:
        """The contiguous range [lo, hi) of stored shard buckets this shard owns."""
        return self.index * SHARD_BUCKETS // self.count, (self.index + 1) * SHARD_BUCKETS // self.count

    def owns(self, uid: str) -> bool:
        lo, hi = self.buckets
        return lo <= shard_bucket(uid) < hi


class Mirror:
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

    # ----------------------------------------------------------------------------- wiring
    @cached_property
    def store(self) -> Store:
        return get_store(self.settings.store, self.settings)

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
        limiter = RateLimiter(rate.images_per_minute, rate.tokens_per_minute, rate.window_s) if rate else None
        if limiter is None and self.settings.provider != "local":
            limiter = RateLimiter()  # no configured rate: paced only once the server says its limit
        pipeline = Pipeline(
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
        return pipeline

    @cached_property
    def store_calls(self) -> StoreCalls:
        """Store calls from coroutines run here, off the event loop; one pool per core, shared by
        every pipeline (a server makes one pipeline per request)."""
        concurrency = self.settings.concurrency or self.configs.limits.concurrency
        # One store method may make a few RPCs, each bounded by store_timeout_s.
        return StoreCalls(
            workers=max(4, 2 * concurrency) if self.owns_process else 32,
            deadline_s=2 * self.settings.store_timeout_s + 5,
        )

    def _default_concurrency(self, rate: RateLimit | None) -> int:
        """The provider decides: one job per core for a local renderer, the pacing limit
        (images per minute, at most limits.concurrency) for an API."""
        own = getattr(self.provider, "default_concurrency", None)
        if isinstance(own, int) and own > 0:
            return own
        limit = self.configs.limits.concurrency
        return max(1, min(limit, int(rate.images_per_minute))) if rate else limit

    def close(self) -> None:
        if "store_calls" in self.__dict__:
            self.store_calls.close()
            del self.__dict__["store_calls"]
        if "store" in self.__dict__:
            self.store.close()  # flushes the operation counts: one write per run

    async def aclose(self) -> None:
        """Close the provider's HTTP client (in the loop that used it), then the store."""
        if self._provider is not None:
            await self._provider.aclose()
        self.close()

    def _run_async(self, coro: Any) -> Any:
        """The sync facade: one event loop per core call; the provider's HTTP client lives and
        closes inside it. Every sync command is its async twin run this way."""

        async def wrapped() -> Any:
            try:
                return await coro
            finally:
                if self._provider is not None:
                    await self._provider.aclose()

        return asyncio.run(wrapped())

    # ------------------------------------------------------------------------------ users
    def user_ids(self, shard: Shard | None = None) -> Iterator[str]:
        """The store's users, and only them (example personas are users once imported)."""
        for uid in self.store.iter_user_ids():
            if shard is None or shard.owns(uid):
                yield uid

    def persona(self, uid: str) -> Persona:
        validate_user_id(uid)
        stored = self.store.get_user(uid)
        if stored is not None:
            return stored
        known: list[str] = []
        for known_uid in self.store.iter_user_ids():
            known.append(known_uid)
            if len(known) > 20:
                break
        shown = ", ".join(known[:20]) + (" (and more: 'mirror users list')" if len(known) > 20 else "")
        raise UnknownUserError(
            f"Unknown user {uid!r}.",
            f"Known users: {shown}."
            if known
            else "The store has no users yet: add them with 'mirror users import "
            "FILE.yaml', or the example personas with 'mirror users import --examples'.",
        )

    def set_progress(self, uid: str, progress: Progress) -> Persona:
        persona = self.persona(uid)  # a user of the store (example personas only once imported)
        updated = persona.model_copy(update={"progress": progress.model_copy(update={"updated_at": self.now()})})
        self.store.put_user(updated)
        return updated

    def import_users(self, personas: list[Persona]) -> list[str]:
        """Add or replace users in the store; returns their ids. Each user's nightly window is
        recomputed with their zone's rules (the zone may have changed)."""
        tick = self.nightly_tick()
        for p in personas:
            self.store.put_user(p)
            self._reopen_window(tick, p)
        return [p.id for p in personas]

    def set_timezone(self, uid: str, name: str | None) -> Persona:
        """Set (or, with None, clear to the configured default) a user's IANA time zone; the
        window they are next served in follows the new zone at once."""
        from .nightly import check_zone

        if name is not None:
            check_zone(name, "--tz")
        persona = self.persona(uid)
        updated = persona.model_copy(update={"timezone": name})
        self.store.put_user(updated)
        self._reopen_window(self.nightly_tick(), updated)
        return updated

    def _reopen_window(self, tick: NightlyTick, persona: Persona) -> None:
        from .nightly import epoch

        now = self.now()
        self.store.set_next_window(persona.id, epoch(tick.window.next_open(now, tick.zone_of(persona))))

    def import_examples(self) -> list[str]:
        """Import the example personas shipped with the package (demo data, on request only)."""
        from .config import example_personas

        return self.import_users(list(example_personas().values()))

    # ------------------------------------------------------------------------------- runs
    def _start_run(self, command: str, params: dict[str, Any], resume: str | None) -> RunInfo:
        if resume:
            run = self.store.get_run(resume)
            if run is None:
                known = ", ".join(r.id for r in self.store.list_runs(5)) or "(none)"
                raise NotFoundError(f"Unknown run {resume!r}.", f"Recent runs: {known} (see 'mirror runs').")
            run.state = "running"
            self.store.update_run(run)
            return run
        run = RunInfo(
            id=self.now().strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6],
            command=command,
            created_at=self.now(),
            params=params,
        )
        self.store.create_run(run)
        return run

    def _finish_run(self, run: RunInfo, report: RunReport) -> None:
        s = report.summary()
        run.counts = {k: s[k] for k in ("generated", "cached", "ingested", "degraded", "failed", "skipped")}
        run.state = "stopped" if report.stopped else ("finished" if not report.failed else "finished_with_failures")
        self.store.update_run(run)

    async def _aexecute(
        self,
        specs: list[JobSpec],
        *,
        dry_run: bool,
        run: RunInfo | None = None,
        max_cost: float | None = None,
        skipped: dict[str, str] | None = None,
    ) -> RunReport:
        """``skipped``: users left out for a reason of their own (named in the report)."""
        pipeline = self.pipeline(max_cost=max_cost)
        if self.on_planned is not None:
            self.on_planned(len(specs))
        if dry_run:
            return await pipeline.plan_only(specs, skipped)
        if self.settings.provider == "openai-batch":
            return await self._asubmit_batch(pipeline, specs, run)
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM) if self.owns_process else ():
            try:
                loop.add_signal_handler(sig, pipeline.request_stop, f"interrupted by {sig.name}")
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            swept: dict[tuple[str, str], Outcome] = {}
            # before the spool is swept: only jobs whose answer never arrived may have billed
            booked = await pipeline.note_interrupted(run)
            if self.owns_process:
                pipeline.spool.sweep_tmp()
                swept = {(o.user_id, o.request_key): o for o in await pipeline.ingest_leftovers(self.persona)}
            report = await pipeline.run_specs(specs, run, skipped)
            report.extra_may_have_billed_usd += booked
            # A planned job whose image was just ingested from the spool shows as a cache hit:
            # report what really happened to it.
            for i, o in enumerate(report.outcomes):
                ingested = swept.pop((o.user_id, o.request_key), None)
                if ingested is not None and o.status == "cached":
                    report.outcomes[i] = ingested
            report.outcomes.extend(swept.values())
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        if pipeline.store_failure is not None:
            report.store_error = pipeline.store_failure.message
        if run is not None:
            try:
                self._finish_run(run, report)
            except Exception as exc:  # the report still reaches the operator
                err = as_store_error(exc) or (exc if isinstance(exc, MirrorError) else None)
                if err is None:
                    raise
                report.store_error = report.store_error or err.message
                report.stopped = (
                    report.stopped or "finished"
                ) + f"; the run's final state was not saved ({err.message})"
        if run is not None and report.store_error is None:  # budget and failure-rate warnings, once each
            report.alerts = await self.store_calls(run_alerts, self.store, self.configs.limits, report, self.now())
        return report

    async def asweep_spool(self) -> list[Outcome]:
        """Store every paid image a crashed process left in the spool (a server does this once
        at start; CLI commands do it on every call)."""
        return await self.pipeline().ingest_leftovers(self.persona)

    # --------------------------------------------------------------------------- commands
    def generate(
        self,
        users: list[str] | None,
        target: str,
        *,
        dry_run: bool = False,
        max_cost: float | None = None,
        shard: Shard | None = None,
        resume: str | None = None,
        regenerate: bool = False,
    ) -> RunReport:
        report: RunReport = self._run_async(
            self.agenerate(
                users, target, dry_run=dry_run, max_cost=max_cost, shard=shard, resume=resume, regenerate=regenerate
            )
        )
        return report

    async def agenerate(
        self,
        users: list[str] | None,
        target: str,
        *,
        dry_run: bool = False,
        max_cost: float | None = None,
        shard: Shard | None = None,
        resume: str | None = None,
        regenerate: bool = False,
    ) -> RunReport:
        """``regenerate``: one more paid image of a target each user already has (a person asked
        for it; limits.regenerations_per_target bounds it). Otherwise a target a user already has
        with the same look is served as it is, whatever their progress says now."""
        self.estimating = self.estimating or dry_run
        target = self.configs.stages.parse_target(target)
        batch = users is None
        uids = list(self.user_ids(shard)) if batch else [validate_user_id(u) for u in users or []]
        personas, skipped = await self._profiles(uids, batch)
        if regenerate and batch:
            raise UsageError(
                "Regenerate is for named users, not --all.", "Pass --user U (repeatable) with --regenerate."
            )
        if regenerate and not dry_run:  # refused before anything runs (the limit, nothing to redo)
            planner = self.planner()
            for p in personas:
                await self.store_calls(planner.check_regeneration, p, target)
        specs = [JobSpec(p, p.progress, target, regenerate=regenerate) for p in personas]
        run = None
        if batch and not dry_run:
            run = self._start_run("generate", {"target": target, "all": True}, resume)
        return await self._aexecute(specs, dry_run=dry_run, run=run, max_cost=max_cost, skipped=skipped)

    def trilogy(
        self, uid: str, photo: Path | None = None, *, dry_run: bool = False, max_cost: float | None = None
    ) -> RunReport:
        report: RunReport = self._run_async(self.atrilogy(uid, photo, dry_run=dry_run, max_cost=max_cost))
        return report

    async def atrilogy(
        self, uid: str, photo: Path | bytes | None = None, *, dry_run: bool = False, max_cost: float | None = None
    ) -> RunReport:
        """``photo``: a file (the CLI) or the bytes of an upload (the server), through the same intake."""
        self.estimating = self.estimating or dry_run
        persona = await self.store_calls(self.persona, uid)
        limits = self.configs.limits.photo
        pic: Photo | None = None
        if isinstance(photo, bytes):
            pic = await asyncio.to_thread(intake_photo_bytes, photo, limits)
        elif photo is not None:
            pic = await asyncio.to_thread(intake_photo, photo, limits)
        specs = [JobSpec(persona, persona.progress, kind, pic) for kind in self.configs.stages.trilogy]
        return await self._aexecute(specs, dry_run=dry_run, max_cost=max_cost)

    async def _asubmit_batch(self, pipeline: Pipeline, specs: list[JobSpec], run: RunInfo | None) -> RunReport:
        from .batch import BatchRunner

        if run is None:
            run = self._start_run("batch", {"via": "batch-api"}, None)
        await pipeline.ingest_leftovers(self.persona)
        runner = BatchRunner(pipeline, self.provider, self.persona)  # type: ignore[arg-type]
        return await runner.submit(specs, run)

    def poll(self, run_id: str, *, wait: bool = False, resubmit: bool = False, poll_s: float = 30.0) -> RunReport:
        """Collect a Batch API run's results into the pipeline; optionally resubmit its failures."""
        from .batch import BatchRunner

        run = self.store.get_run(run_id)
        if run is None:
            raise NotFoundError(f"Unknown run {run_id!r}.", "List runs with 'mirror runs'.")
        if "batches" not in run.params:
            raise UsageError(f"Run {run_id} did not go through the Batch API.", "Resume it with --resume instead.")
        pipeline = self.pipeline()

        async def go() -> RunReport:
            runner = BatchRunner(pipeline, self.provider, self.persona)  # type: ignore[arg-type]
            return await runner.collect(run, wait=wait, poll_s=poll_s, resubmit=resubmit)

        report: RunReport = self._run_async(go())
        return report

    def latest_stage(self, uid: str) -> str | None:
        table = self.configs.stages
        stages = [r.stage for r in self.store.list_avatars(uid) if r.status in OK_STATUSES and r.target in table.names]
        return max(stages, key=table.index) if stages else None

    def evolve_specs(
        self, persona: Persona, to: str | None = None, *, known_latest: tuple[str | None] | None = None
    ) -> list[JobSpec]:
        """The jobs that bring a user's timeline up to date: an anchor first if there is none,
        then the stage reached (only when a milestone was crossed since the latest avatar).
        ``known_latest`` carries the user's latest stage when the due index told it."""
        table = self.configs.stages
        latest = known_latest[0] if known_latest is not None else self.latest_stage(persona.id)
        reached = table.parse_stage(to) if to else table.stage_for_days(persona.progress.active_days)
        specs: list[JobSpec] = []
        if latest is None and reached != table.names[0]:
            specs.append(JobSpec(persona, persona.progress, table.names[0]))
        if to or latest is None or table.index(reached) > table.index(latest):
            specs.append(JobSpec(persona, persona.progress, reached))
        return specs

    async def _profiles(self, uids: list[str], batch: bool) -> tuple[list[Persona], dict[str, str]]:
        """The users' profiles; in a batch, one whose stored profile does not validate is
        skipped with the reason (a named user's is an error)."""
        personas: list[Persona] = []
        skipped: dict[str, str] = {}
        for uid in uids:
            try:
                personas.append(await self.store_calls(self.persona, uid))
            except UsageError as exc:
                if not batch:
                    raise
                skipped[uid] = exc.message
        return personas, skipped

    def evolve(
        self,
        uid: str | None,
        *,
        due: bool = False,
        to: str | None = None,
        dry_run: bool = False,
        max_cost: float | None = None,
        shard: Shard | None = None,
        resume: str | None = None,
        any_hour: bool = False,
    ) -> RunReport:
        report: RunReport = self._run_async(
            self.aevolve(
                uid, due=due, to=to, dry_run=dry_run, max_cost=max_cost, shard=shard, resume=resume, any_hour=any_hour
            )
        )
        return report

    async def aevolve(
        self,
        uid: str | None,
        *,
        due: bool = False,
        to: str | None = None,
        dry_run: bool = False,
        max_cost: float | None = None,
        shard: Shard | None = None,
        resume: str | None = None,
        any_hour: bool = False,
    ) -> RunReport:
        """``due``: one nightly tick, serving the due users inside their local window (every due
        user with ``any_hour``)."""
        self.estimating = self.estimating or dry_run
        if not due and uid is None:
            raise UsageError("Nothing to evolve.", "Pass --user U, or --due for every user who crossed a milestone.")
        if due and to:
            raise UsageError("--to cannot be combined with --due.", "Force a stage for one user at a time.")
        if any_hour and not due:
            raise UsageError("--any-hour goes with --due.", "Add --due, or drop --any-hour.")
        plan = None
        if due:
            plan = await self.store_calls(self.plan_tick, shard, any_hour=any_hour, dry_run=dry_run)
            specs = plan.specs
        else:
            persona = await self.store_calls(self.persona, uid or "")
            specs = await self.store_calls(self.evolve_specs, persona, to)
        run = None
        if due and not dry_run:
            run = self._start_run("evolve", {"due": True, "any_hour": any_hour}, resume)
        skipped = plan.skipped if plan is not None else None
        report = await self._aexecute(specs, dry_run=dry_run, run=run, max_cost=max_cost, skipped=skipped)
        if plan is not None:
            if not dry_run:
                await self.store_calls(self.nightly_tick().finish, plan, report.outcomes)
            report.tick = plan.summary(None if dry_run else report.outcomes)
        return report

    # ------------------------------------------------------------------------- due index
    def due_queries(self) -> list[DueQuery]:
        """One query per stage a user can be at (none yet, then each stage but the last): the
        users at that stage whose active days reached the next stage's threshold."""
        table = self.configs.stages
        names = table.names
        queries = [DueQuery(-1, 0)]
        for rank, nxt in enumerate(names[1:]):
            queries.append(DueQuery(rank, table.get(nxt).from_day))
        return queries

    def nightly_tick(self) -> NightlyTick:
        names = self.configs.stages.names
        nightly = self.configs.limits.nightly

        def specs_for(persona: Persona, rank: int) -> list[JobSpec]:
            return self.evolve_specs(persona, known_latest=(names[rank] if 0 <= rank < len(names) else None,))

        return NightlyTick(self.store, nightly.window, nightly.timezone, self.due_queries(), specs_for)

    def plan_tick(self, shard: Shard | None = None, *, any_hour: bool = False, dry_run: bool = False) -> TickPlan:
        """One nightly tick's jobs, from a few indexed queries: reads grow with the due users
        whose window has opened, not with all users (see mirror_cli.tick)."""
        if self.store.due_index_version() < DUE_INDEX_VERSION:
            self.reindex_due()
        buckets = shard.buckets if shard else (0, SHARD_BUCKETS)
        return self.nightly_tick().plan(self.now(), buckets, any_hour=any_hour, dry_run=dry_run)

    def due_specs(self, shard: Shard | None = None) -> list[JobSpec]:
        """The jobs of every due user, whatever their local time (``evolve --due --any-hour``)."""
        return self.plan_tick(shard, any_hour=True).specs

    def overdue_users(self) -> int:
        """Due users whose nightly window passed with no tick serving them (missed ticks)."""
        if self.store.due_index_version() < DUE_INDEX_VERSION:
            return 0  # no window stored yet: the next tick indexes them
        return sum(1 for _ in self.nightly_tick().overdue(self.now()))

    def reindex_due(self) -> int:
        """Fill the due index of users stored before it existed (once per store: reads every
        user and their avatars, a cost paid by the first due run only)."""
        table = self.configs.stages
        n = 0
        for uid in list(self.store.iter_user_ids()):
            latest = self.latest_stage(uid)
            self.store.raise_latest_rank(uid, table.index(latest) if latest else -1)
            self.store.set_next_window(uid, 0)  # the next tick looks at the user and decides
            n += 1
        self.store.set_due_index_version(DUE_INDEX_VERSION)
        return n

    def timeline(self, uid: str) -> list[Any]:
        """The user's avatars, latest per target, in stage then trilogy order."""
        persona = self.persona(uid)
        records = [r for r in self.store.list_avatars(persona.id) if r.status in OK_STATUSES]
        latest: dict[str, Any] = {}
        for r in records:
            latest[r.target] = r
        order = [*self.configs.stages.names, *self.configs.stages.trilogy]
        return [latest[t] for t in order if t in latest]

    # ------------------------------------------------------------------------ accounting
    def usage(self, *, period: str = "month", since: Any = None, until: Any = None, user: str | None = None) -> Any:
        from .accounting import aggregate, resolve_period
        from .kpis import KpiTally

        if since and until and since > until:
            raise UsageError(
                f"--since {since} is after --until {until}.", "Give the earlier date as --since, the later as --until."
            )
        if user:
            self.persona(user)
        now = self.now()
        start, end = resolve_period(period, since, until, now.date())
        tally = KpiTally()  # the KPIs ride on the figures' one pass over the ledger
        events = tally.tap(self.store.iter_events(start, end, user))
        month_to_date = self.store.month_paid_usd(now.strftime("%Y-%m"), user)
        entry = self.configs.models.models.get(self.model_name)
        figures = aggregate(
            events,
            month_to_date,
            period="range" if since or until else period,
            start=start,
            end=end,
            user=user,
            now=now,
            monthly_budget=self.configs.limits.monthly_budget_usd,
            ops_today=self.store.op_counts(wall_clock().strftime("%Y-%m-%d")),  # stores count in real time
            quality=self.settings.quality or self.configs.style.quality,
            batch_available=bool(entry and entry.capabilities.batch),
        )
        targets = self.configs.limits.targets
        figures.kpis, figures.days = tally.kpis(targets), tally.by_day(targets)
        if user is None:
            figures.overdue_users = self.overdue_users()
            if figures.overdue_users:
                figures.recommendations.append(
                    f"{figures.overdue_users} due user(s) missed their whole nightly window: is "
                    "'mirror evolve --due' scheduled hourly? They are served in their next night."
                )
        figures.selections = self.store.selection_counts(start, end, user)  # what users choose to show
        return figures

    def purge_cache(
        self,
        *,
        older_than: str | None = None,
        user: str | None = None,
        everything: bool = False,
        dry_run: bool = False,
    ) -> Any:
        from .housekeeping import parse_age, purge

        if not older_than and not everything:
            older_than = f"{self.configs.limits.cache_ttl_days}d"
        age = None if everything else parse_age(older_than or "30d")
        users = [self.persona(user).id] if user else None
        uids = users or sorted({e.user_id for e in self.store.cache_entries()})
        protected = {u: {r.id for r in self.timeline(u)} for u in uids}
        return purge(self.store, protected=protected, users=users, older_than=age, now=self.now(), dry_run=dry_run)

    def runs(self, limit: int = 20) -> list[RunInfo]:
        return self.store.list_runs(limit)

    def run_detail(self, run_id: str) -> tuple[RunInfo, list[Any]]:
        run = self.store.get_run(run_id)
        if run is None:
            raise NotFoundError(f"Unknown run {run_id!r}.", "List runs with 'mirror runs'.")
        return run, self.store.job_states(run_id)

    # --------------------------------------------------------------------------- review
    def gallery(self, users: list[str] | None, out_dir: Path, *, everyone: bool = False) -> dict[str, Any]:
        from .gallery import UserTimeline, write_gallery

        uids = list(self.user_ids()) if everyone else [validate_user_id(u) for u in users or []]
        if not uids:
            raise UsageError("No users to show.", "Pass --user U (repeatable) or --all.")
        table = self.configs.stages
        labels = {t: self.configs.label(t) for t in [*table.names, *table.trilogy]}
        order = [*table.names, *table.trilogy]
        days = {s: table.get(s).from_day for s in table.names}
        timelines = [UserTimeline(self.persona(u), self.timeline(u), labels, order, days) for u in uids]
        if everyone:
            timelines = [t for t in timelines if t.records]
        name = "gallery-all" if everyone else f"gallery-{'-'.join(uids)}"
        title = (
            "Mirror Realm · all users" if everyone else "Mirror Realm · " + ", ".join(t.persona.name for t in timelines)
        )
        return write_gallery(timelines, self.store, out_dir, name, title)

    # ------------------------------------------------------------------------- fallbacks
    def seed_fallbacks(
        self,
        *,
        only: list[str] | None = None,
        variants: list[str] | None = None,
        dry_run: bool = False,
        out: Path | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Render the shared fallback set into the user's project (``fallback_dir``) or ``out``;
        never into the installed package unless ``out`` names it explicitly (a source checkout)."""
        import json

        from .imaging import contact_sheet, decode
        from .models import Appearance
        from .pipeline import paid_event, render_asset

        self.estimating = self.estimating or dry_run
        table = self.configs.stages
        targets = [table.parse_target(t) for t in only] if only else [*table.names, *table.trilogy]
        all_variants = self.configs.fallbacks.variants
        if variants:
            known = {v.name for v in all_variants}
            unknown = [v for v in variants if v not in known]
            if unknown:
                raise UsageError(
                    f"Unknown variant(s): {', '.join(unknown)}.",
                    f"Use names from fallbacks.yaml: {', '.join(sorted(known))}.",
                )
        chosen = [v for v in all_variants if not variants or v.name in variants]
        from .resources import is_inside_package

        root = out or self.settings.fallback_dir
        if out is None and is_inside_package(root):
            raise UsageError(
                f"The fallback folder {root} is inside the installed package, which is read-only.",
                "Point --fallback-dir / MIRROR_FALLBACK_DIR at your project (see 'mirror init'), or pass --out DIR.",
            )
        folder = root / self.configs.style.name
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"entries": []}
        existing = {(e["stage"], e["variant"]): e for e in manifest["entries"]}
        planner = self.planner()
        pipeline = self.pipeline(planner)
        rendered = unchanged = 0
        estimate_usd = 0.0
        jobs = []
        for variant in chosen:
            appearance = Appearance.model_validate(
                {
                    "skin": variant.skin,
                    "hair_style": variant.hair_style,
                    "hair_color": variant.hair_color,
                    "hoodie_color": "#C8553D",
                }
            )
            for target in targets:
                stage = target if target in table.names else "month"
                progress = Progress(active_days=table.get(stage).from_day)
                persona = Persona(
                    id=f"fallback-{variant.name}", name="Friend", appearance=appearance, progress=progress
                )
                job = planner.plan(persona, progress, target)
                old = existing.get((target, variant.name))
                if (
                    old
                    and not force
                    and old.get("request_key") == job.request_key
                    and (folder / old["file"]).exists()
                    and hashlib.sha256((folder / old["file"]).read_bytes()).hexdigest() == old["sha256"]
                ):
                    unchanged += 1
                    continue
                estimate_usd += job.estimate_usd
                jobs.append((variant, target, job))
        run: RunInfo | None = None
        if not dry_run:
            run = self._start_run("seed-fallbacks", {"only": only, "variants": variants}, None)

            async def go() -> None:
                for variant, target, job in jobs:
                    job_id = f"{variant.name}.{target}"
                    assert run is not None
                    await pipeline.io(
                        self.store.put_job_state,
                        JobState(
                            run.id, job_id, "_fallbacks", target, "in_flight", job.request_key, None, None, self.now()
                        ),
                    )
                    result, webp, verdict, paid = await render_asset(pipeline, job)
                    rel = f"{target}/{variant.name}.webp"
                    (folder / target).mkdir(parents=True, exist_ok=True)
                    (folder / rel).write_bytes(webp)
                    existing[(target, variant.name)] = {
                        "stage": target,
                        "variant": variant.name,
                        "file": rel,
                        "sha256": hashlib.sha256(webp).hexdigest(),
                        "size": len(webp),
                        "width": 1024,
                        "height": 1024,
                        "provider": result.provider,
                        "model": result.model,
                        "prompt": job.request.prompt,
                        "created": self.now().isoformat(),
                        "request_key": job.request_key,
                        "quality_gate": verdict.ok,
                        "traits": {
                            "skin": variant.skin,
                            "hair_style": variant.hair_style,
                            "hair_color": variant.hair_color,
                        },
                    }
                    if paid and result.cost_usd:
                        await pipeline.io(
                            self.store.record_event,
                            paid_event(
                                "_fallbacks", target, job.request_key, result, at=self.now(), validation_ok=verdict.ok
                            ),
                            event_id=f"paid:_fallbacks:{job.request_key}",
                        )
                    pipeline.spool.remove(job.user_id, job.request_key)
                    await pipeline.io(
                        self.store.put_job_state,
                        JobState(run.id, job_id, "_fallbacks", target, "done", job.request_key, None, rel, self.now()),
                    )

            folder.mkdir(parents=True, exist_ok=True)
            try:
                self._run_async(go())
            finally:
                entries = sorted(existing.values(), key=lambda e: (e["variant"], e["stage"]))
                manifest = {
                    "style": self.configs.style.name,
                    "style_version": self.configs.style.version,
                    "entries": entries,
                }
                manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            rendered = len(jobs)
            assert run is not None
            run.state, run.counts = "finished", {"generated": rendered, "unchanged": unchanged}
            self.store.update_run(run)
        sheet_path = folder / "contact-sheet.png"
        if not dry_run and existing:
            order = [*table.names, *table.trilogy]
            tiles = [
                (decode((folder / e["file"]).read_bytes()), f"{self.configs.label(e['stage'])}", e["variant"])
                for e in sorted(existing.values(), key=lambda e: (e["variant"], order.index(e["stage"])))
            ]
            contact_sheet(tiles, f"Fallback set · {self.configs.style.name}", columns=len(order), tile=200).save(
                sheet_path
            )
        return {
            "run_id": run.id if run else None,
            "manifest": str(manifest_path),
            "contact_sheet": str(sheet_path) if sheet_path.exists() else None,
            "rendered": rendered if not dry_run else 0,
            "planned": len(jobs),
            "unchanged": unchanged,
            "estimate_usd": round(estimate_usd, 6),
            "dry_run": dry_run,
            "jobs": [
                {
                    "variant": v.name,
                    "target": t,
                    "status": "planned" if dry_run else "generated",
                    "estimate_usd": round(j.estimate_usd, 6),
                    "file": f"{t}/{v.name}.webp",
                }
                for v, t, j in jobs
            ],
        }

    # ---------------------------------------------------------------------------- doctor
    def doctor(self) -> list[dict[str, str | None]]:
        """Every check runs and reports; a failing one (a store that is down, a missing key) is a
        ``fail`` row with the fix, never an exception."""
        from .review.doctor import approvals_check

        checks: list[dict[str, str | None]] = []
        for name, check in (
            ("configs", self._check_configs),
            ("store", self._check_store),
            ("model", self._check_model),
            ("provider", self._check_provider),
            ("spool", self._check_spool),
            ("fallbacks", self._check_fallbacks),
            ("approvals", lambda: approvals_check(self.fallbacks)),
            ("identity", self._check_identity),
            ("nightly", self._check_nightly),
        ):
            try:
                checks.extend(check())
            except Exception as exc:
                hint = exc.hint if isinstance(exc, MirrorError) else None
                detail = (exc.message if isinstance(exc, MirrorError) else f"{type(exc).__name__}: {exc}").splitlines()
                checks.append({"check": name, "status": "fail", "detail": detail[0] if detail else "", "fix": hint})
        return checks

    def _check_configs(self) -> list[dict[str, str | None]]:
        from .resources import default_config_dir

        shipped = self.configs.root.resolve() == default_config_dir().resolve()
        where = "the package's defaults" if shipped else str(self.configs.root)
        return [
            {
                "check": "configs",
                "status": "ok",
                "detail": f"{where} valid (style {self.configs.style.name} v{self.configs.style.version})",
                "fix": None,
            }
        ]

    def _check_store(self) -> list[dict[str, str | None]]:
        try:
            ops = self.store.op_counts(self.now().strftime("%Y-%m-%d"))
        except Exception as exc:
            hint = exc.hint if isinstance(exc, MirrorError) else None
            message = exc.message if isinstance(exc, MirrorError) else f"{type(exc).__name__}: {exc}"
            first = message.splitlines()[0] if message else ""
            return [
                {
                    "check": "store",
                    "status": "fail",
                    "detail": f"{self.settings.store}: {first}",
                    "fix": hint or "Check --store and its settings.",
                }
            ]
        checks: list[dict[str, str | None]] = [
            {
                "check": "store",
                "status": "ok",
                "detail": f"{self.settings.store} reachable; "
                f"{sum(v for k, v in ops.items() if k != 'bytes_stored')} operations today",
                "fix": None,
            }
        ]
        store_checks = getattr(self.store, "doctor_checks", None)  # a back-end's own lines
        if store_checks is not None:
            checks.extend(store_checks())
        return checks

    def _check_model(self) -> list[dict[str, str | None]]:
        name = self.model_name
        entry = self.configs.models.models.get(name)
        if entry is None:
            return [
                {
                    "check": "model",
                    "status": "fail",
                    "detail": f"{name} is not in models.yaml",
                    "fix": f"Use one of: {', '.join(self.configs.models.models)}",
                }
            ]
        day = today(self.now)
        checks: list[dict[str, str | None]] = []
        state = entry.lifecycle(day)
        if state == "shut_down":
            checks.append(
                {
                    "check": "model",
                    "status": "fail",
                    "detail": f"{name} was shut down on {entry.shutdown_date}",
                    "fix": f"Switch to {', '.join(entry.replacements)}",
                }
            )
        elif state == "retiring":
            checks.append(
                {
                    "check": "model",
                    "status": "warn",
                    "detail": f"{name} shuts down on {entry.shutdown_date}",
                    "fix": f"Plan the move to {', '.join(entry.replacements)}",
                }
            )
        else:
            checks.append({"check": "model", "status": "ok", "detail": f"{name} ({entry.snapshot})", "fix": None})
        default = self.configs.models.default
        if default != name and self.configs.models.models[default].lifecycle(day) == "shut_down":
            # Only a warning: the configs in use may outlive a shipped default; runs name their model.
            checks.append(
                {
                    "check": "default model",
                    "status": "warn",
                    "detail": f"models.yaml's default {default} has shut down",
                    "fix": "Set 'default' in configs/models.yaml to a current model",
                }
            )
        return checks

    def _check_provider(self) -> list[dict[str, str | None]]:
        result: list[dict[str, str | None]] = self._run_async(self._provider_checks(self.model_name))
        return result

    def _check_nightly(self) -> list[dict[str, str | None]]:
        nightly = self.configs.limits.nightly
        overdue = self.overdue_users()
        detail = f"window {nightly.window.label} local (default zone {nightly.timezone}); {overdue} user(s) overdue"
        return [
            {
                "check": "nightly",
                "status": "warn" if overdue else "ok",
                "detail": detail,
                "fix": "Due users missed their whole nightly window: schedule 'mirror evolve --due' hourly "
                "(Cloud Scheduler or a CronJob '0 * * * *'); they are served in their next night."
                if overdue
                else None,
            }
        ]

    def _check_spool(self) -> list[dict[str, str | None]]:
        pending = self.spool.pending()
        damaged = self.spool.damaged()
        rows: list[dict[str, str | None]] = [
            {
                "check": "spool",
                "status": "warn" if pending else "ok",
                "detail": f"{len(pending)} paid image(s) waiting to be stored" if pending else "empty",
                "fix": "Run the same command again: spooled images are ingested without paying." if pending else None,
            }
        ]
        if damaged:
            rows.append(
                {
                    "check": "spool_damaged",
                    "status": "warn",
                    "detail": f"{len(damaged)} damaged spool entr{'y' if len(damaged) == 1 else 'ies'} set aside "
                    f"(e.g. {damaged[0]})",
                    "fix": "Recover the image by hand if you can, then delete the file; its spend is in the ledger.",
                }
            )
        return rows

    def _check_fallbacks(self) -> list[dict[str, str | None]]:
        n_fb = len(self.fallbacks.entries)
        expected = len(self.configs.fallbacks.variants) * (
            len(self.configs.stages.names) + len(self.configs.stages.trilogy)
        )
        own = len(self.fallbacks.folders[0].entries)
        return [
            {
                "check": "fallbacks",
                "status": "ok" if n_fb >= expected else "warn",
                "detail": f"{n_fb}/{expected} fallback assets ({own} from {self.fallbacks.folder}, "
                f"the rest shipped with the package)",
                "fix": None if n_fb >= expected else "Run 'mirror seed-fallbacks'.",
            }
        ]

    def _check_identity(self) -> list[dict[str, str | None]]:
        from . import identity

        usable, why = identity.available()
        on = self.configs.style.identity.enabled
        return [
            {
                "check": "identity",
                "status": "ok" if usable or not on else "warn",
                "detail": (
                    f"same-face score on (threshold {self.configs.style.identity.threshold}): {why}"
                    if usable and on
                    else "same-face score off in the style"
                    if not on
                    else f"same-face score skipped: {why}"
                ),
                "fix": None if usable or not on else identity.EXTRA_HINT,
            }
        ]

    async def _provider_checks(self, model: str) -> list[dict[str, str | None]]:
        check = getattr(self.provider, "check", None)
        if check is None:
            return [
                {
                    "check": "provider",
                    "status": "ok",
                    "detail": f"{self.settings.provider}: {self.provider.renderer_version}",
                    "fix": None,
                }
            ]
        result: list[dict[str, str | None]] = await check(model)
        return result

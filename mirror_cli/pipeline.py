"""Runs jobs: spool -> cache -> limits/budget -> provider -> spool -> post-process -> validate
-> store (image, then record) -> ledger -> I-There message. Every subcommand goes through here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from . import identity, imaging, messages, pricing
from .clock import Clock, system_clock, wall_clock
from .errors import MirrorError, ProviderError, RunStoppedError, StoreError, as_store_error
from .fallbacks import FallbackSet
from .identity import IdentityScore
from .models import AvatarRecord, ImageResult, JobTimings, LedgerEvent, Persona, Progress
from .pacing import ProviderFailure, RateLimiter, RetryStats, call_with_retries
from .planner import Job, Planner
from .spool import Spool
from .stores.base import CacheEntry, Caps, Claim, ClaimResult, JobState, LimitReached, Reservation, RunInfo
from .stores.calls import StoreCalls
from .telemetry import hooks
from .telemetry.timing import current as timing_now
from .telemetry.timing import job_clock, step
from .validate import Verdict, check_image, parse_size, undecodable

if TYPE_CHECKING:
    from .config import ConfigSet
    from .imaging import Photo
    from .providers.base import ImageProvider
    from .stores.base import Store

_ESTIMATE = re.compile(r"estimate \$([0-9.]+)")

Status = Literal["generated", "cached", "ingested", "degraded", "fallback", "failed", "blocked", "planned", "skipped"]


@dataclass
class JobSpec:
    persona: Persona
    progress: Progress
    target: str
    photo: Photo | None = None
    regenerate: bool = False  # one more paid image of a target the user already has (limited)

    @property
    def job_id(self) -> str:
        return f"{self.persona.id}.{self.target}"


@dataclass
class Outcome:
    user_id: str
    target: str
    status: Status
    record: AvatarRecord | None = None
    served_path: str | None = None
    image_url: str | None = None
    reason: str | None = None
    cost_usd: float = 0.0
    estimate_usd: float = 0.0
    request_key: str = ""
    message: str = ""
    validation: dict[str, Any] = field(default_factory=dict)
    may_have_billed_usd: float = 0.0  # requests sent whose answer never arrived, at their estimate
    limit: str | None = None  # the cap that refused the job (LimitReached.kind, or run_budget)
    timings: JobTimings | None = None  # where the job's time went (telemetry.timing)

    def to_dict(self, store: Store | None = None) -> dict[str, Any]:
        r = self.record
        return {
            "user": self.user_id,
            "target": self.target,
            "status": self.status,
            "cached": self.status == "cached",
            "avatar_id": r.id if r else None,
            "image_path": self.served_path,
            "image_url": self.image_url,
            "thumb_path": r.thumb_path if r else None,
            "width": r.width if r else None,
            "height": r.height if r else None,
            "cost_usd": round(self.cost_usd, 6),
            "may_have_billed_usd": round(self.may_have_billed_usd, 6),
            "estimate_usd": round(self.estimate_usd, 6),
            "request_key": self.request_key,
            "reason": self.reason,
            "message": self.message,
            "quality_gate": self.validation or None,
        }


@dataclass
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)
    run_id: str | None = None
    stopped: str | None = None
    store_error: str | None = None  # the store could not be written (a full disk): exit 8
    elapsed_s: float = 0.0
    retries: RetryStats = field(default_factory=RetryStats)
    alerts: list[Any] = field(default_factory=list)  # telemetry.alerts.Alert raised by this run (new ones)
    # a nightly tick's figures (mirror_cli.tick.TickPlan.summary): in window, due, served, left
    tick: dict[str, Any] | None = None

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    extra_may_have_billed_usd: float = 0.0  # booked for jobs of an earlier, killed process

    @property
    def cost_usd(self) -> float:
        return round(sum(o.cost_usd for o in self.outcomes), 6)

    @property
    def may_have_billed_usd(self) -> float:
        return round(sum(o.may_have_billed_usd for o in self.outcomes) + self.extra_may_have_billed_usd, 6)

    @property
    def degraded(self) -> int:
        return self.count("degraded", "fallback", "blocked")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "jobs": len(self.outcomes),
            "generated": self.count("generated"),
            "cached": self.count("cached"),
            "ingested": self.count("ingested"),
            "degraded": self.degraded,
            "failed": self.failed,
            "skipped": self.count("skipped"),
            "planned": self.count("planned"),
            "cost_usd": self.cost_usd,
            "may_have_billed_usd": self.may_have_billed_usd,
            "estimate_usd": round(sum(o.estimate_usd for o in self.outcomes if o.status == "planned"), 6),
            "stopped": self.stopped,
            "store_error": self.store_error,
            "elapsed_s": round(self.elapsed_s, 3),
            "retries": self.retries.retries,
            "rate_limited": self.retries.rate_limited,
            "unanswered": self.retries.unanswered,
            "alerts": [a.to_dict() for a in self.alerts],
            **({"tick": self.tick} if self.tick is not None else {}),
        }


class Stop(Exception):
    pass


@dataclass
class _Unanswered:
    """Requests of one job that were sent and never answered (booked at the job's estimate)."""

    usd: float = 0.0
    count: int = 0


def _failed(job: Job, reason: str) -> Outcome:
    """A job that ends failed with nothing stored: its key and estimate stay in the report."""
    return Outcome(
        job.user_id, job.target, "failed", reason=reason, request_key=job.request_key, estimate_usd=job.estimate_usd
    )


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
        self.configs = configs
        self.store = store
        # Every store call from a coroutine goes through here: off the event loop, with a deadline.
        self.io = io or StoreCalls(workers=max(4, 2 * concurrency), deadline_s=store_deadline_s)
        self.provider = provider
        self.planner = planner
        self.spool = spool
        self.fallbacks = fallbacks
        self.concurrency = concurrency
        self.limiter = limiter
        self.max_cost = max_cost
        lim = configs.limits
        self.caps = caps or Caps(lim.per_user_daily, lim.system_daily, lim.monthly_budget_usd)
        self.now: Clock = now or system_clock
        self.wall: Clock = wall_clock  # leases are read by other processes: the machine's time
        self.on_progress = on_progress
        self.stop_event = asyncio.Event()
        self.stop_reason: str | None = None
        self._run_spent = 0.0
        self._run_lock = asyncio.Lock()
        self.stats = RetryStats()
        self.run: RunInfo | None = None
        self._earlier_attempts = False  # the run had job states before this attempt
        self.store_failure: StoreError | None = None  # the first store failure that stopped the run
        # who holds this pipeline's claims: host and process (a dead local owner is detected at once)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # ------------------------------------------------------------------------------- public
    async def plan_only(self, specs: list[JobSpec]) -> RunReport:
        report = RunReport()
        for spec in specs:
            job = await self.io(
                self.planner.plan,
                spec.persona,
                spec.progress,
                spec.target,
                photo=spec.photo,
                regenerate=spec.regenerate,
            )
            hit = job.existing or await self._cache_hit(job)
            report.outcomes.append(
                Outcome(
                    job.user_id,
                    job.target,
                    "cached" if hit else "planned",
                    record=hit,
                    served_path=hit.image_path if hit else None,
                    estimate_usd=0.0 if hit else job.estimate_usd,
                    request_key=job.request_key,
                    reason="; ".join(job.blocked) or None,
                )
            )
        await self._attach_urls(report)
        return report

    async def run_specs(self, specs: list[JobSpec], run: RunInfo | None = None) -> RunReport:
        """Run every spec; jobs of one user run in order (later stages reference earlier ones),
        users run concurrently up to ``concurrency``."""
        started = time.perf_counter()
        self.run = run
        report = RunReport(run_id=run.id if run else None, retries=self.stats)
        done_before = await self._done_jobs(run)
        if run:
            await asyncio.gather(*(self._job_state(s, "pending") for s in specs if s.job_id not in done_before))
        by_user: dict[str, list[JobSpec]] = {}
        for spec in specs:
            by_user.setdefault(spec.persona.id, []).append(spec)
        sem = asyncio.Semaphore(self.concurrency)

        async def one_user(user_specs: list[JobSpec]) -> None:
            async with sem:
                for spec in user_specs:
                    if spec.job_id in done_before:
                        report.outcomes.append(
                            Outcome(
                                spec.persona.id,
                                spec.target,
                                "skipped",
                                reason="done in an earlier attempt of this run",
                            )
                        )
                        continue
                    if self.stop_event.is_set():
                        return
                    with job_clock(started, target=spec.target) as clock:
                        outcome = await self._run_one(spec)
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
        from pathlib import Path

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
        """Finish every image a crashed run paid for and left in the spool, whether or not its
        job is planned now: store it (idempotent), write its ledger line (once), clear it."""
        outcomes: list[Outcome] = []
        for uid, key in self.spool.pending():
            spooled = self.spool.get(uid, key)
            if spooled is None or spooled.result is None:
                continue  # a gate-retry marker is finished by the job itself (it is still due)
            if await self._held_by_live_owner(uid, key):
                continue  # another process on this data dir is storing it right now
            target = spooled.meta.get("target")
            try:
                persona = await self.io(persona_of, uid)
                job = await self.io(self.planner.plan, persona, persona.progress, str(target))
            except MirrorError:
                continue  # an unknown user or target: leave the paid image where it is, for a person
            job.request_key = key  # the key it was paid under, even if the plan would differ today
            outcomes.append(await self._finish(job, spooled.result, ingested=True, may_retry=False))
            # its dead owner's claim goes once the image is stored (the cache answers from now on)
            with contextlib.suppress(Exception):
                await self.io(self.store.release_claim, claim_key(uid, key))
        return outcomes

    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    # ------------------------------------------------------------------------------ one job
    async def _done_jobs(self, run: RunInfo | None) -> set[str]:
        if run is None:
            return set()
        states = await self.io(self.store.job_states, run.id)
        self._earlier_attempts = bool(states)
        return {s.job_id for s in states if s.state in ("done", "degraded")}

    async def note_interrupted(self, run: RunInfo | None) -> float:
        """Jobs left 'in flight' by a process that died: the provider may have billed a request
        whose answer never arrived (the API has no idempotency key). Where the claim's owner is
        dead (or its lease over) and no answer reached the spool, book it at its estimate as
        may-have-billed: call this before the spool is swept. Returns the USD booked."""
        if run is None:
            return 0.0
        booked = 0.0
        for state in await self.io(self.store.job_states, run.id):
            if state.state != "in_flight":
                continue
            claim = await self.io(self.store.get_claim, claim_key(state.user_id, state.request_key))
            if claim is not None and (owner_dead(claim.owner) or claim.lease_until < self.wall()):
                booked += await self._book_crashed(claim, state.user_id, state.target, state.request_key)
            elif claim is not None:
                continue  # its owner is alive: still in flight
            # the job is no longer in flight: it runs again in this attempt (or is settled at the end)
            await self._safe_job_state_raw(state, "pending", "its request was in flight when the process died")
        return booked

    async def settle_job_states(self, run: RunInfo | None) -> None:
        """A finished run leaves no job pending or in flight: a job whose result was stored (for
        example ingested from the spool) is done, any other one failed."""
        if run is None or self.stop_event.is_set():
            return
        for state in await self.io(self.store.job_states, run.id):
            if state.state not in ("pending", "in_flight"):
                continue
            entry = await self.io(self.store.cache_get, state.user_id, state.request_key) if state.request_key else None
            if entry is not None:
                await self._safe_job_state_raw(state, "done", "its image was stored (ingested from the spool)")
            else:
                await self._safe_job_state_raw(state, "failed", "not run in the run's final attempt")

    async def _safe_job_state_raw(self, state: JobState, new: Any, detail: str) -> None:
        with contextlib.suppress(Exception):
            await self.io(
                self.store.put_job_state,
                JobState(
                    state.run_id,
                    state.job_id,
                    state.user_id,
                    state.target,
                    new,
                    state.request_key,
                    state.avatar_id,
                    detail,
                    self.now(),
                ),
            )

    async def _job_state(
        self,
        spec: JobSpec,
        state: Any,
        key: str = "",
        avatar_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        if self.run:
            await self.io(
                self.store.put_job_state,
                JobState(
                    self.run.id,
                    spec.job_id,
                    spec.persona.id,
                    spec.target,
                    state,
                    key,
                    avatar_id,
                    detail,
                    self.now(),
                ),
            )

    async def _cache_hit(self, job: Job) -> AvatarRecord | None:
        entry = await self.io(self.store.cache_get, job.user_id, job.request_key)
        if entry is None:
            return None
        ttl = timedelta(days=self.configs.limits.cache_ttl_days)
        if self.now() - entry.created_at > ttl:
            return None
        return await self.io(self.store.get_avatar, job.user_id, entry.avatar_id)

    async def _run_one(self, spec: JobSpec) -> Outcome:
        try:
            job = await self.io(
                self.planner.plan,
                spec.persona,
                spec.progress,
                spec.target,
                photo=spec.photo,
                regenerate=spec.regenerate,
            )
        except StoreError as exc:
            self.request_stop(f"the store is unavailable: {exc.message}")
            await self._safe_job_state(spec, "failed", "", exc.message)
            return Outcome(spec.persona.id, spec.target, "failed", reason=exc.message)
        except MirrorError as exc:
            await self._job_state(spec, "failed", detail=exc.message)
            return Outcome(spec.persona.id, spec.target, "failed", reason=exc.message)
        try:
            outcome = await self._execute(job)
        except RunStoppedError as exc:
            self.request_stop(exc.message)
            await self._job_state(spec, "pending", job.request_key, detail=f"stopped: {exc.message}")
            return Outcome(job.user_id, job.target, "failed", reason=exc.message, request_key=job.request_key)
        except Exception as exc:  # a store or post-processing failure: the image stays in the spool
            store_error = as_store_error(exc)
            if store_error is not None:
                # No point buying images the store cannot hold: stop, leave the run resumable.
                self.request_stop(f"the store is unavailable: {store_error.message}")
                self.store_failure = store_error
                detail = store_error.message
            else:
                detail = f"{type(exc).__name__}: {exc}"
            await self._safe_job_state(spec, "failed", job.request_key, detail)
            return Outcome(job.user_id, job.target, "failed", reason=detail, request_key=job.request_key)
        state = {"generated": "done", "cached": "done", "ingested": "done", "failed": "failed"}.get(
            outcome.status, "degraded"
        )
        await self._safe_job_state(
            spec, state, job.request_key, outcome.reason, outcome.record.id if outcome.record else None
        )
        return outcome

    async def _safe_job_state(
        self, spec: JobSpec, state: Any, key: str, detail: str | None, avatar_id: str | None = None
    ) -> None:
        # The store may be down: the run report still says what happened to the job.
        with contextlib.suppress(Exception):
            await self._job_state(spec, state, key, avatar_id, detail)

    async def _prepare(self, job: Job) -> Outcome | Reservation | None:
        """Everything before a provider call: an Outcome when the job is settled without one,
        else the budget reservation for it (None for a free renderer)."""
        early = await self._early(job)
        if early is not None:
            return early
        if self._retry_due(job):
            return await self._resume_gate_retry(job)
        return await self._prepare_rest(job)

    def _retry_due(self, job: Job) -> bool:
        spooled = self.spool.get(job.user_id, job.request_key)
        return spooled is not None and spooled.retry_due

    async def _early(self, job: Job) -> Outcome | None:
        """A job settled without any request: its paid image is in the spool, or it is cached."""
        # 1. an image paid for earlier and never stored is ingested, not bought again
        spooled = self.spool.get(job.user_id, job.request_key)
        if (
            spooled is not None
            and spooled.result is not None
            and not await self._held_by_live_owner(job.user_id, job.request_key)
        ):
            return await self._finish(
                job, spooled.result, ingested=True, may_retry=spooled.meta.get("attempt") != "retry"
            )
        # 2. an exact repeat is a cache hit at cost 0 (per user: keys include the user), and so is
        # a stage the user already has with the same look, whatever their metrics say now
        hit = job.existing or await self._cache_hit(job)
        if hit is not None:
            await self.io(
                self.store.record_event,
                LedgerEvent(
                    ts=self.now(),
                    user_id=job.user_id,
                    kind="cache_hit",
                    target=job.target,
                    request_key=job.request_key,
                    avatar_id=hit.id,
                    provider=hit.provider,
                    model=hit.model,
                    run_id=self._run_id(),
                    timings=timing_now(),
                ),
            )
            return Outcome(
                job.user_id,
                job.target,
                "cached",
                record=hit,
                served_path=hit.image_path,
                request_key=job.request_key,
                message=hit.message,
            )
        return None

    async def _prepare_rest(self, job: Job) -> Outcome | Reservation | None:
        # 3. blocked free text never reaches a provider
        if job.blocked:
            return await self._degrade(job, "blocked", "content screen: " + "; ".join(job.blocked), fallback_only=True)
        # 3b. optionally, the provider's moderation endpoint screens the free text first
        blocked = await self._moderate(job)
        if blocked is not None:
            return blocked
        # 4. reserve the estimate against every cap before spending (free renderers have no caps)
        if _is_free(job):
            return None
        with step("reserve"):
            return await self._reserve(job)

    async def _execute(self, job: Job) -> Outcome:
        early = await self._early(job)
        if early is not None:
            return early
        if _is_free(job):  # nothing to pay twice: no claim
            return await self._unclaimed(job)
        with step("claim"):
            claimed = await self._claim(job)
        if isinstance(claimed, Outcome):
            return claimed
        beat = asyncio.create_task(self._heartbeat(claimed))
        cancelled = False
        try:
            early = await self._early(job)  # another owner finished it just before we claimed
            if early is not None:
                return early
            if self._retry_due(job):
                return await self._resume_gate_retry(job)
            prepared = await self._prepare_rest(job)
            if isinstance(prepared, Outcome):
                return prepared
            if prepared is not None:
                r = prepared
                claimed.info["reservation"] = {
                    "id": r.id,
                    "user_id": r.user_id,
                    "amount": r.amount,
                    "day": r.day,
                    "month": r.month,
                }
                with contextlib.suppress(MirrorError):
                    await self.io(
                        self.store.renew_claim,
                        claimed.key,
                        claimed.owner,
                        self._lease_until(),
                        {"reservation": claimed.info["reservation"]},
                    )
            return await self._buy(job, prepared, may_retry=True)
        except asyncio.CancelledError:
            cancelled = True  # a request may be in flight: the lease expires and resume books it
            raise
        finally:
            beat.cancel()
            if not cancelled:
                with contextlib.suppress(Exception):
                    await self.io(self.store.release_claim, claimed.key, claimed.owner)

    async def _unclaimed(self, job: Job) -> Outcome:
        if self._retry_due(job):
            return await self._resume_gate_retry(job)
        prepared = await self._prepare_rest(job)
        if isinstance(prepared, Outcome):
            return prepared
        return await self._buy(job, prepared, may_retry=True)

    # ------------------------------------------------------------------------------- claims
    def _lease_until(self, seconds: float | None = None) -> datetime:
        return self.wall() + timedelta(seconds=seconds or self.configs.limits.claims.lease_s)

    def _new_claim(self, job: Job, lease_s: float | None = None, owner: str | None = None) -> Claim:
        return Claim(
            key=claim_key(job.user_id, job.request_key),
            owner=owner or self.owner,
            lease_until=self._lease_until(lease_s),
            created_at=self.now(),
            info={"run_id": self._run_id(), "job_id": job.job_id, "estimate_usd": job.estimate_usd},
        )

    async def _claim(self, job: Job) -> Claim | Outcome:
        """Claim the job before its request. Held by a live owner: wait for its result (a cache
        hit) up to claims.wait_s. Held by a dead owner, or past its lease: take it over, and book
        what that owner's request may have billed."""
        cfg = self.configs.limits.claims
        give_up = time.monotonic() + cfg.wait_s
        steal: str | None = None
        while True:
            claim = self._new_claim(job)
            result: ClaimResult = await self.io(self.store.claim, claim, self.wall(), steal)
            if result.acquired:
                if result.previous is not None:
                    await self._book_crashed(result.previous, job.user_id, job.target, job.request_key)
                return claim
            current = result.current
            if current is not None and owner_dead(current.owner):
                steal = current.owner
                continue
            steal = None
            if time.monotonic() >= give_up:
                return _failed(
                    job, f"in flight in another process ({current.owner if current else '?'}); not bought twice"
                )
            await asyncio.sleep(cfg.poll_s)
            early = await self._early(job)  # the other owner's result
            if early is not None:
                return early

    async def _held_by_live_owner(self, uid: str, request_key: str) -> bool:
        """Is this request claimed by another process that is still alive (and within its lease)?"""
        claim = await self.io(self.store.get_claim, claim_key(uid, request_key))
        return (
            claim is not None
            and claim.owner != self.owner
            and not owner_dead(claim.owner)
            and claim.lease_until >= self.wall()
        )

    async def _heartbeat(self, claim: Claim) -> None:
        every = self.configs.limits.claims.lease_s / 3
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(MirrorError):
                await self.io(self.store.renew_claim, claim.key, claim.owner, self._lease_until())

    async def _book_crashed(self, previous: Claim, uid: str, target: str, request_key: str) -> float:
        """A claim whose owner died with its request in flight: unless its answer reached the
        spool, book the request at its estimate as may-have-billed (once per claim), and settle
        the owner's reservation at that estimate so budgets count it."""
        spooled = self.spool.get(uid, request_key)
        if spooled is not None and spooled.result is not None:
            return 0.0  # its answer arrived: it is ingested, at its real cost
        # (a gate-retry marker means the first image was paid and stored: the retry was in flight)
        estimate = float(previous.info.get("estimate_usd") or 0.0)
        booked = await self.io(
            self.store.record_event,
            LedgerEvent(
                ts=self.now(),
                user_id=uid,
                kind="may_have_billed",
                target=target,
                request_key=request_key,
                cost_usd=estimate,
                run_id=previous.info.get("run_id"),
                detail="in flight when its process died: the provider may have billed it",
            ),
            event_id=f"maybe:{previous.key}:{previous.owner}:{previous.created_at.isoformat()}",
        )
        if not booked:
            return 0.0
        r = previous.info.get("reservation")
        if r:
            with contextlib.suppress(MirrorError):
                await self.io(
                    self.store.settle, Reservation(r["id"], r["user_id"], r["amount"], r["day"], r["month"]), estimate
                )
        return estimate

    async def _buy(
        self, job: Job, reservation: Reservation | None, *, may_retry: bool, first_cost: float = 0.0
    ) -> Outcome:
        """Send the request (reserved), settle what it cost, and finish the job. Spend that may
        have been billed (a request sent whose answer never arrived) is settled too, never released."""
        await self._job_state_job(job, "in_flight")
        maybe = _Unanswered()
        try:
            result = await self._generate(job, maybe, attempt="retry" if not may_retry else "first")
        except ProviderFailure as failure:
            await self._settle(job, reservation, 0.0, maybe.usd)
            outcome = await self._provider_failed(job, failure)
            outcome.may_have_billed_usd = maybe.usd
            return outcome
        except BaseException:
            await self._settle(job, reservation, 0.0, maybe.usd)
            raise
        await self._settle(job, reservation, result.cost_usd, maybe.usd)
        outcome = await self._finish(job, result, ingested=False, may_retry=may_retry)
        outcome.cost_usd += first_cost
        outcome.may_have_billed_usd += maybe.usd
        return outcome

    async def _settle(self, job: Job, reservation: Reservation | None, actual: float, maybe_usd: float) -> None:
        """Settle a reservation to what was billed plus what may have been; release it only when
        nothing at all may have been billed."""
        if reservation is None:
            return
        total = actual + maybe_usd
        with step("settle"):
            if total > 0:
                await self.io(self.store.settle, reservation, total)
            else:
                await self.io(self.store.release, reservation)
        self._run_spent += total - reservation.amount

    async def _book_unanswered(self, job: Job, failure: ProviderFailure, maybe: _Unanswered) -> None:
        """A request that was sent and never answered (timeout, dropped answer) may have been
        billed: book it at its estimate, apart from confirmed spend."""
        maybe.usd += job.estimate_usd
        maybe.count += 1
        await self.io(
            self.store.record_event,
            LedgerEvent(
                ts=self.now(),
                user_id=job.user_id,
                kind="may_have_billed",
                target=job.target,
                request_key=job.request_key,
                provider=self.planner.provider_name,
                model=job.model_name,
                cost_usd=job.estimate_usd,
                run_id=self._run_id(),
                detail=f"no answer ({failure.code}): the provider may have billed this request",
            ),
            event_id=f"maybe:{job.user_id}:{job.request_key}:{uuid.uuid4().hex[:12]}",
        )

    async def _moderate(self, job: Job) -> Outcome | None:
        cfg = self.configs.limits.moderation
        moderate = getattr(self.provider, "moderate", None)
        texts = [
            t
            for t in [
                *job.progress.discovered_traits,
                job.progress.major_achievement or "",
                job.persona.appearance.description,
            ]
            if t
        ]
        if not cfg.enabled or moderate is None or not texts:
            return None
        try:
            categories: list[str] = await call_with_retries(
                lambda: moderate(texts, cfg.model), self.configs.limits.retry, None, 0, self.stats
            )
        except ProviderFailure as failure:
            if failure.kind == "stop":
                raise RunStoppedError(failure.message, _stop_hint(failure)) from None
            # The screen is unavailable: send no free text at all rather than unscreened text.
            job.request = (await self.io(self.planner.plan, job.persona, job.progress, job.target, safe=True)).request
            return None
        if categories:
            return await self._degrade(
                job, "blocked", f"moderation screen flagged: {', '.join(categories)}", fallback_only=True
            )
        return None

    async def _job_state_job(self, job: Job, state: Any) -> None:
        if self.run:
            await self.io(
                self.store.put_job_state,
                JobState(
                    self.run.id,
                    job.job_id,
                    job.user_id,
                    job.target,
                    state,
                    job.request_key,
                    None,
                    f"request sent (estimate ${job.estimate_usd:.6f})" if state == "in_flight" else None,
                    self.now(),
                ),
            )

    def _run_id(self) -> str | None:
        return self.run.id if self.run else None

    async def _reserve(self, job: Job) -> Reservation | Outcome:
        # The run's budget is held first (under the lock), so concurrent jobs can reserve in the
        # store at the same time without ever passing --max-cost together.
        async with self._run_lock:
            over = self.max_cost is not None and self._run_spent + job.estimate_usd > self.max_cost + 1e-9
            if not over:
                self._run_spent += job.estimate_usd
        if over:
            out = await self._degrade(
                job, "degraded", f"run budget: --max-cost ${self.max_cost or 0:.2f} would be exceeded"
            )
            out.limit = "run_budget"
            return out
        try:
            reservation: Reservation = await self.io(
                self.store.reserve, job.user_id, job.request_key, job.estimate_usd, self.now(), self.caps
            )
        except BaseException as exc:
            async with self._run_lock:
                self._run_spent -= job.estimate_usd
            if isinstance(exc, LimitReached):
                out = await self._degrade(job, "degraded", f"limit {exc.kind}: {exc.detail}")
                out.limit = exc.kind
                return out
            raise
        return reservation

    async def _generate(self, job: Job, maybe: _Unanswered | None = None, attempt: str = "first") -> ImageResult:
        """Call the provider (paced, retried) and spool the paid image before anything else."""
        maybe = maybe if maybe is not None else _Unanswered()

        async def call() -> ImageResult:
            res = await self.provider.generate(job.request)
            if self.limiter and res.rate_headers:
                self.limiter.observe_headers(res.rate_headers)
            return res

        async def unanswered(failure: ProviderFailure) -> None:
            await self._book_unanswered(job, failure, maybe)

        policy = self.configs.limits.retry
        try:
            with step("provider"):
                result = await call_with_retries(
                    call, policy, self.limiter, job.tokens_estimate, self.stats, on_unanswered=unanswered
                )
        except ProviderFailure as failure:
            if failure.kind != "moderation":
                raise
            # Never retried as is: once more with the style's safe prompt (no free text), then fallback.
            await self._ledger_failure(job, failure, kind="blocked")
            safe_job = await self.io(self.planner.plan, job.persona, job.progress, job.target, safe=True)
            job.request = safe_job.request
            with step("provider"):
                result = await call_with_retries(
                    call, policy, self.limiter, job.tokens_estimate, self.stats, on_unanswered=unanswered
                )
        hooks.provider_answered(result)
        result.cost_usd = pricing.cost_from_usage(
            job.model_entry, result.usage, batch=self.planner.provider_name.endswith("-batch")
        )
        self.spool_result(job, result, attempt=attempt)
        return result

    def _post_process(self, data: bytes, size_text: str) -> tuple[Any, bytes, bytes | None, Verdict]:
        """(image or None, webp, thumbnail, verdict). An undecodable answer is a hard failure."""
        expected = parse_size(size_text)
        try:
            img, webp, thumb = imaging.post_process(data, expected)
        except MirrorError as exc:
            return None, b"", None, undecodable(exc.message)
        return img, webp, thumb, check_image(img, self.configs.style.gate, expected)

    def spool_result(self, job: Job, result: ImageResult, attempt: str = "first") -> None:
        """A paid image goes to the spool before anything else touches it."""
        self.spool.put(job.user_id, job.request_key, result, self._spool_meta(job, attempt))

    def _spool_meta(self, job: Job, attempt: str) -> dict[str, Any]:
        return {
            "user_id": job.user_id,
            "target": job.target,
            "request_key": job.request_key,
            "run_id": self._run_id(),
            "created_at": self.now().isoformat(),
            "attempt": attempt,  # "retry": the gate's second request, never retried again
            "estimate_usd": job.estimate_usd,
        }

    async def _finish(self, job: Job, result: ImageResult, *, ingested: bool, may_retry: bool = True) -> Outcome:
        # Pillow work runs off the event loop so pacing and other users' requests keep moving.
        with step("post_process"):
            img, webp, thumb, verdict = await asyncio.to_thread(self._post_process, result.data, job.request.size)
        gate = self.configs.style.gate
        if not verdict.ok and may_retry and gate.enabled and (verdict.hard or gate.retry_on_heuristic):
            retried = await self._retry_reinforced(job, result, webp or result.data, verdict)
            if retried is not None:
                return retried
        avatar_id = job.avatar_id
        if img is None:  # undecodable, and no second try: keep the paid bytes for review, report it
            return await self._keep_unusable(job, result, verdict, ingested=ingested)
        status: Any = "ok" if verdict.ok else "flagged"
        reasons = [] if verdict.ok else ["quality gate: " + "; ".join(verdict.failures)]
        with step("post_process"):
            same_face = await self._same_face(job, img)
        if same_face is not None and same_face.drift:  # flagged for a person; never bought again
            status = "flagged"
            reasons.append(f"identity drift: distance {same_face.distance} > {same_face.threshold} from the anchor")
        with step("store"):
            image_ref, thumb_ref = await self.io(
                self.store.put_image, job.user_id, f"{job.target}-{avatar_id}", webp, thumb
            )
        msg = self._message(job)
        timings = timing_now()
        record = AvatarRecord(
            id=avatar_id,
            user_id=job.user_id,
            target=job.target,
            stage=job.stage,
            request_key=job.request_key,
            image_path=image_ref,
            thumb_path=thumb_ref,
            width=img.width,
            height=img.height,
            provider=result.provider,
            model=result.model,
            quality=job.request.quality,
            cost_usd=result.cost_usd,
            usage=result.usage,
            request_id=result.request_id,
            prompt=job.request.prompt,
            references=job.request.references,
            message=msg,
            cues=list(job.parts.cues),
            look_key=job.look_key,
            status=status,
            reason="; ".join(reasons) or None,
            validation=verdict.to_dict(),
            identity=same_face.to_dict() if same_face else {},
            created_at=self.now(),
            timings=timings,
        )
        # The record, the due index and the ledger line are independent writes: they go out
        # together (each is idempotent, and the spool keeps the image until all are done).
        rank = self.configs.stages.index(job.stage) if job.target in self.configs.stages.names else None
        # One paid image, one ledger line, however often a crash makes us come back here.
        ledger_line = paid_event(
            job.user_id,
            job.target,
            job.request_key,
            result,
            at=self.now(),
            kind="spool_ingest" if ingested else "generated",
            avatar_id=avatar_id,
            run_id=self._run_id(),
            validation_ok=verdict.ok,
            identity_distance=same_face.distance if same_face else None,
            identity_drift=same_face.drift if same_face else None,
            timings=timings,
        )
        with step("store"):  # the outcome's store time counts these writes too; the record's cannot
            created, _, _ = await asyncio.gather(
                self.io(self.store.put_avatar, record),
                self.io(self.store.raise_latest_rank, job.user_id, rank) if rank is not None else asyncio.sleep(0),
                self.io(self.store.record_event, ledger_line, event_id=f"paid:{job.user_id}:{job.request_key}"),
            )
            # A record stored by an earlier attempt stays as it was: report that one.
            earlier = None if created else await self.io(self.store.get_avatar, job.user_id, avatar_id)
            stored = earlier or record
            await self.io(self.store.cache_put, CacheEntry(job.user_id, job.request_key, avatar_id, stored.created_at))
        self.spool.remove(job.user_id, job.request_key)
        if not verdict.ok and gate.on_fail == "fallback":
            asset = await self.io(self.fallbacks.pick, job.target, job.persona)
            return Outcome(
                job.user_id,
                job.target,
                "fallback",
                record=stored,
                served_path=str(asset) if asset else None,
                cost_usd=0.0 if ingested else result.cost_usd,
                estimate_usd=job.estimate_usd,
                request_key=job.request_key,
                reason="quality gate failed: " + "; ".join(verdict.failures),
                validation=verdict.to_dict(),
            )
        return Outcome(
            job.user_id,
            job.target,
            "ingested" if ingested else "generated",
            record=stored,
            served_path=stored.image_path,
            cost_usd=0.0 if ingested else result.cost_usd,
            estimate_usd=job.estimate_usd,
            request_key=job.request_key,
            message=stored.message,
            reason=None if verdict.ok else "stored flagged by the quality gate: " + "; ".join(verdict.failures),
            validation=verdict.to_dict(),
        )

    async def _same_face(self, job: Job, img: Any) -> IdentityScore | None:
        """The same-face score against the user's anchor (optional extra; None when skipped)."""
        cfg = self.configs.style.identity
        if not cfg.enabled or not identity.available_once()[0]:
            return None
        anchor, _ = await self.io(self.planner.anchor_and_previous, job.user_id, job.target, job.stage)
        if anchor is None or anchor.target == job.target:
            return None  # this image is (or replaces) the anchor
        data = await self.io(self.store.read_image, anchor.image_path)
        try:
            return await asyncio.to_thread(identity.score, data, anchor.id, img, cfg.threshold)
        except Exception as exc:  # a score is advice: never lose or re-buy an image over it
            return IdentityScore(None, cfg.threshold, anchor.id, f"not measured: {type(exc).__name__}: {exc}")

    async def _keep_unusable(self, job: Job, result: ImageResult, verdict: Verdict, *, ingested: bool) -> Outcome:
        ref, _ = await self.io(
            self.store.put_image, job.user_id, f"rejected-{job.target}-{job.avatar_id}", result.data, None
        )
        await self.io(
            self.store.record_event,
            paid_event(
                job.user_id,
                job.target,
                job.request_key,
                result,
                at=self.now(),
                kind="spool_ingest" if ingested else "generated",
                run_id=self._run_id(),
                validation_ok=False,
                detail=f"paid but unusable ({'; '.join(verdict.failures)}); kept at {ref}",
            ),
            event_id=f"paid:{job.user_id}:{job.request_key}",
        )
        self.spool.remove(job.user_id, job.request_key)
        return Outcome(
            job.user_id,
            job.target,
            "failed",
            cost_usd=0.0 if ingested else result.cost_usd,
            estimate_usd=job.estimate_usd,
            request_key=job.request_key,
            reason="quality gate: " + "; ".join(verdict.failures),
            validation=verdict.to_dict(),
        )

    async def _retry_reinforced(self, job: Job, result: ImageResult, kept: bytes, verdict: Verdict) -> Outcome | None:
        """The quality gate failed on a hard check (or the style opted in to re-buying heuristic
        failures): keep the paid image (ledger + a 'rejected' file for review), record in the spool
        that the retry is due, then try once more with the style's reinforced prompt, within caps.
        None: no retry happened (no budget, or it failed) and the caller stores the first image."""
        rejected_ref, _ = await self.io(
            self.store.put_image, job.user_id, f"rejected-{job.target}-{job.avatar_id}", kept, None
        )
        await self.io(
            self.store.record_event,
            paid_event(
                job.user_id,
                job.target,
                job.request_key,
                result,
                at=self.now(),
                run_id=self._run_id(),
                validation_ok=False,
                detail=f"rejected by the quality gate ({'; '.join(verdict.failures)}); kept at {rejected_ref}",
            ),
            event_id=f"paid:{job.user_id}:{job.request_key}:rejected",
        )
        # One rename turns the paid image into the retry marker: a crash from here on resumes
        # with the retry, never with the first request again.
        self.spool.mark_retry(
            job.user_id, job.request_key, {**self._spool_meta(job, "first"), "rejected": rejected_ref}
        )
        outcome = await self._gate_retry(job, first_cost=result.cost_usd)
        if isinstance(outcome, Outcome):
            return outcome
        # no retry: the first image is stored flagged by the caller (the marker goes with it)
        return None

    async def _gate_retry(self, job: Job, first_cost: float) -> Outcome | str:
        """Buy the reinforced retry; a string says why it could not be bought."""
        reservation: Reservation | None = None
        if not _is_free(job):
            reserved = await self._reserve(job)
            if isinstance(reserved, Outcome):
                return reserved.reason or "no budget for the quality gate's retry"
            reservation = reserved
        job.request = (await self.io(self.planner.plan, job.persona, job.progress, job.target, reinforce=True)).request
        outcome = await self._buy(job, reservation, may_retry=False, first_cost=first_cost)
        if outcome.status == "failed" and outcome.record is None and first_cost:
            return outcome.reason or "the quality gate's retry failed"
        return outcome

    async def _resume_gate_retry(self, job: Job) -> Outcome:
        """A crash came after the first image was paid, kept as rejected and the retry marked."""
        outcome = await self._gate_retry(job, first_cost=0.0)
        if isinstance(outcome, Outcome):
            return outcome
        return _failed(job, f"the quality gate's retry is still due: {outcome}")

    def _message(self, job: Job) -> str:
        return messages.avatar_message(
            self.configs, job.persona, job.target, job.stage, job.label, job.progress, job.parts.cues, job.previous
        )

    async def _provider_failed(self, job: Job, failure: ProviderFailure) -> Outcome:
        if failure.kind == "stop":
            await self._ledger_failure(job, failure, kind="failed")
            raise RunStoppedError(failure.message, _stop_hint(failure))
        if failure.kind == "moderation":
            await self._ledger_failure(job, failure, kind="blocked")
            return await self._degrade(job, "blocked", f"moderation: {failure.message}", fallback_only=True)
        await self._ledger_failure(job, failure, kind="failed")
        return _failed(job, failure.message)

    async def _ledger_failure(self, job: Job, failure: ProviderFailure, kind: Any) -> None:
        await self.io(
            self.store.record_event,
            LedgerEvent(
                ts=self.now(),
                user_id=job.user_id,
                kind=kind,
                target=job.target,
                request_key=job.request_key,
                provider=self.planner.provider_name,
                model=job.model_name,
                request_id=failure.request_id,
                run_id=self._run_id(),
                detail=f"{failure.status or ''} {failure.code or failure.kind}".strip(),
            ),
        )

    async def _degrade(self, job: Job, status: Any, reason: str, fallback_only: bool = False) -> Outcome:
        """Serve the user's latest avatar, or the stage's fallback asset, and say why."""
        latest = None
        if not fallback_only:
            good = [r for r in await self.io(self.store.list_avatars, job.user_id) if r.status in ("ok", "flagged")]
            latest = good[-1] if good else None
        served: str | None
        if latest is not None:
            served, kind = latest.image_path, "degraded"
            record = latest
        else:
            asset = await self.io(self.fallbacks.pick, job.target, job.persona)
            served, kind = (str(asset) if asset else None), "fallback"
            record = None
            status = "blocked" if status == "blocked" else "fallback"
        await self.io(
            self.store.record_event,
            LedgerEvent(
                ts=self.now(),
                user_id=job.user_id,
                kind=kind if status != "blocked" else "blocked",
                target=job.target,
                request_key=job.request_key,
                avatar_id=latest.id if latest else None,
                run_id=self._run_id(),
                detail=reason,
            ),
        )
        return Outcome(
            job.user_id,
            job.target,
            status,
            record=record,
            served_path=served,
            reason=reason,
            request_key=job.request_key,
            estimate_usd=job.estimate_usd,
        )


def paid_event(
    user_id: str,
    target: str,
    request_key: str,
    result: ImageResult,
    *,
    at: datetime,
    kind: Any = "generated",
    **extra: Any,
) -> LedgerEvent:
    """The ledger line of one paid image (at the core's time ``at``): who, what, the provider's
    usage, cost and request id."""
    return LedgerEvent(
        ts=at,
        user_id=user_id,
        kind=kind,
        target=target,
        request_key=request_key,
        provider=result.provider,
        model=result.model,
        usage=result.usage,
        cost_usd=result.cost_usd,
        request_id=result.request_id,
        **extra,
    )


def claim_key(uid: str, request_key: str) -> str:
    return f"{uid}/{request_key}"


def owner_dead(owner: str) -> bool:
    """A claim owner ('host:pid:nonce') that is a process of this host which no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _is_free(job: Job) -> bool:
    """Limits and budgets are cost control: a model with no price (the offline renderer) has none."""
    p = job.model_entry.prices
    return p.text_in == p.image_in == p.image_out == p.text_out == 0


def _stop_hint(failure: ProviderFailure) -> str:
    code = failure.code or ""
    if code == "insufficient_quota":
        return "Add credit or raise the project's quota at platform.openai.com, then resume the run."
    if code == "billing_hard_limit_reached":
        return "Raise the billing hard limit of the organisation, then resume the run."
    if failure.status == 401:
        return "Set a valid OPENAI_API_KEY (or --secrets-file); the current key was rejected."
    if failure.status == 403:
        return (
            "Verify the organisation for GPT Image models (it can take 15 minutes to apply) or check the key's project."
        )
    if failure.status == 404:
        return "The model is unknown to the API (retired?): pick another with --model."
    return "Fix the cause above, then resume the run."


async def render_asset(pipeline: Pipeline, job: Job) -> tuple[ImageResult, bytes, Verdict, bool]:
    """Render one shared asset (a fallback): spool, provider with retries, post-process, gate.
    Returns (result, webp bytes, verdict, paid)."""
    spooled = pipeline.spool.get(job.user_id, job.request_key)
    paid = spooled is None
    result = spooled.result if spooled and spooled.result else await pipeline._generate(job)
    img, webp, _, verdict = await asyncio.to_thread(pipeline._post_process, result.data, job.request.size)
    if img is None:
        raise ProviderError("The provider returned data that is not a readable image.", "Run seed-fallbacks again.")
    return result, webp, verdict, paid

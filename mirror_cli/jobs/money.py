"""Where a job's money is decided: the estimate reserved against every cap before a request,
settled to what was billed (plus what may have been) after it; a request sent and never answered
booked as "may have billed" at its estimate; a dead owner's request booked once per claim; and
the ledger line of every paid image, once, whatever crash brings us back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import MirrorError
from ..models import ImageResult, LedgerEvent
from ..stores.base import Caps, Claim, LimitReached, Reservation
from ..telemetry.timing import step
from .types import Unanswered, reservation_from

if TYPE_CHECKING:
    from ..pacing import ProviderFailure
    from ..planner import Job
    from .context import JobContext


@dataclass
class Refused:
    """A cap refused the job's estimate: ``limit`` names it (a LimitReached kind, or run_budget)."""

    limit: str
    reason: str


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


def paid_event_id(user_id: str, request_key: str, suffix: str = "") -> str:
    """One paid image, one ledger line: the id a crash and a resume write it under again."""
    return f"paid:{user_id}:{request_key}{suffix}"


class Money:
    def __init__(self, ctx: JobContext, max_cost: float | None, caps: Caps) -> None:
        self.ctx = ctx
        self.max_cost = max_cost
        self.caps = caps
        self.run_spent = 0.0
        self._run_lock = asyncio.Lock()

    async def reserve(self, job: Job) -> Reservation | Refused:
        """Hold the job's estimate against the run's budget, then every cap in the store."""
        # The run's budget is held first (under the lock), so concurrent jobs can reserve in the
        # store at the same time without ever passing --max-cost together.
        async with self._run_lock:
            over = self.max_cost is not None and self.run_spent + job.estimate_usd > self.max_cost + 1e-9
            if not over:
                self.run_spent += job.estimate_usd
        if over:
            return Refused("run_budget", f"run budget: --max-cost ${self.max_cost or 0:.2f} would be exceeded")
        ctx = self.ctx
        try:
            reservation: Reservation = await ctx.io(
                ctx.store.reserve, job.user_id, job.request_key, job.estimate_usd, ctx.now(), self.caps
            )
        except BaseException as exc:
            async with self._run_lock:
                self.run_spent -= job.estimate_usd
            if isinstance(exc, LimitReached):
                return Refused(exc.kind, f"limit {exc.kind}: {exc.detail}")
            raise
        return reservation

    async def settle(self, reservation: Reservation | None, actual: float, maybe_usd: float) -> None:
        """Settle a reservation to what was billed plus what may have been; release it only when
        nothing at all may have been billed."""
        if reservation is None:
            return
        total = actual + maybe_usd
        with step("settle"):
            if total > 0:
                await self.ctx.io(self.ctx.store.settle, reservation, total)
            else:
                await self.ctx.io(self.ctx.store.release, reservation)
        self.run_spent += total - reservation.amount

    async def book_unanswered(self, job: Job, failure: ProviderFailure, maybe: Unanswered) -> None:
        """A request that was sent and never answered (timeout, dropped answer) may have been
        billed: book it at its estimate, apart from confirmed spend."""
        maybe.usd += job.estimate_usd
        maybe.count += 1
        await self.ctx.book(
            job,
            "may_have_billed",
            event_id=f"maybe:{job.user_id}:{job.request_key}:{uuid.uuid4().hex[:12]}",
            provider=self.ctx.planner.provider_name,
            model=job.model_name,
            cost_usd=job.estimate_usd,
            detail=f"no answer ({failure.code}): the provider may have billed this request",
        )

    def booker(self, job: Job, maybe: Unanswered) -> Callable[[ProviderFailure], Awaitable[None]]:
        """What the provider call books each request of this job that goes unanswered with."""

        async def book(failure: ProviderFailure) -> None:
            await self.book_unanswered(job, failure, maybe)

        return book

    async def book_crashed(self, previous: Claim, uid: str, target: str, request_key: str) -> float:
        """A claim whose owner died with its request in flight: unless its answer reached the
        spool, book the request at its estimate as may-have-billed (once per claim), and settle
        the owner's reservation at that estimate so budgets count it. Returns the USD booked."""
        ctx = self.ctx
        spooled = ctx.spool.get(uid, request_key)
        if spooled is not None and spooled.result is not None:
            return 0.0  # its answer arrived: it is ingested, at its real cost
        # (a gate-retry marker means the first image was paid and stored: the retry was in flight)
        estimate = float(previous.info.get("estimate_usd") or 0.0)
        booked = await ctx.io(
            ctx.store.record_event,
            LedgerEvent(
                ts=ctx.now(),
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
                await ctx.io(ctx.store.settle, reservation_from(r), estimate)
        return estimate

    def paid_line(self, job: Job, result: ImageResult, kind: str, **extra: Any) -> LedgerEvent:
        """The ledger line of this job's paid image, now, in this run."""
        ctx = self.ctx
        return paid_event(
            job.user_id, job.target, job.request_key, result, at=ctx.now(), kind=kind, run_id=ctx.run_id(), **extra
        )

    async def book_paid(self, line: LedgerEvent, suffix: str = "") -> None:
        """Write a paid image's ledger line (idempotent by its id)."""
        await self.ctx.io(
            self.ctx.store.record_event, line, event_id=paid_event_id(line.user_id, line.request_key, suffix)
        )

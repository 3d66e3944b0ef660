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
    from ..spool import SetAside
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
            # the request's own id: recovery books the same request under the same id, once
            event_id=f"maybe:{job.user_id}:{job.request_key}:{maybe.sent_id or uuid.uuid4().hex[:12]}",
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

    async def book_crashed(
        self, previous: Claim, uid: str, target: str, request_key: str, *, take_over: bool = False
    ) -> float:
        """A claim whose owner died: book the one request it recorded as sent and never saw
        answered (its answer is not in the spool) as may-have-billed at its estimate — once per
        request, under the request's id, whoever books it first (recovery or a take-over) — and
        settle the owner's reservation at that estimate. An owner that sent nothing billed
        nothing: on ``take_over`` its reservation is released (settled at the spooled image's
        cost when its answer did arrive). Returns the USD booked."""
        ctx = self.ctx
        spooled = ctx.spool.get(uid, request_key)
        r = previous.info.get("reservation")
        reservation = reservation_from(r) if r else None
        sent = previous.info.get("sent")
        if spooled is not None and spooled.result is not None:  # answered: ingested at its real cost
            if take_over and reservation is not None:
                await self._settle_quietly(reservation, spooled.result.cost_usd)
            return 0.0
        if not sent:
            if take_over and reservation is not None:
                await self._settle_quietly(reservation, 0.0)
            return 0.0
        # (a gate-retry marker in the spool: the first image was paid and kept, the retry was in flight)
        estimate = float(sent.get("estimate_usd") or previous.info.get("estimate_usd") or 0.0)
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
                detail="sent when its process died, never answered: the provider may have billed it",
            ),
            event_id=f"maybe:{uid}:{request_key}:{sent['id']}",
        )
        if not booked:
            return 0.0
        if reservation is not None:
            await self._settle_quietly(reservation, estimate)
        return estimate

    async def _settle_quietly(self, reservation: Reservation, usd: float) -> None:
        """A dead owner's reservation (which it may have settled itself before it died): settled
        or released only while still held, so it is never counted twice."""
        with contextlib.suppress(MirrorError):
            if usd > 0:
                await self.ctx.io(self.ctx.store.settle, reservation, usd, only_held=True)
            else:
                await self.ctx.io(self.ctx.store.release, reservation, only_held=True)

    async def settle_left_claim(self, previous: Claim | None, usd: float) -> None:
        """A dead owner's claim on an answer just stored from the spool: its reservation settled
        at what the answer cost (the caps count it; the ledger line is the ingest's)."""
        r = previous.info.get("reservation") if previous is not None and previous.owner != self.ctx.owner else None
        if r:
            await self._settle_quietly(reservation_from(r), usd)

    async def book_damaged(self, job: Job, aside: SetAside) -> None:
        """A paid image whose spool entry could not be read (set aside): its cost as the header
        said, else the job's estimate, booked as may-have-billed once per entry."""
        cost = aside.meta.get("cost_usd")
        usd = float(cost) if isinstance(cost, int | float) and cost > 0 else job.estimate_usd
        await self.ctx.book(
            job,
            "may_have_billed",
            event_id=f"maybe:{job.user_id}:{job.request_key}:{aside.path.name}",
            cost_usd=usd,
            detail=f"a damaged spool entry ({aside.reason}), set aside at {aside.path}: paid, not readable",
        )

    def paid_line(self, job: Job, result: ImageResult, kind: str, **extra: Any) -> LedgerEvent:
        """The ledger line of this job's paid image, now, in this run."""
        ctx = self.ctx
        return paid_event(
            job.user_id, job.target, job.request_key, result, at=ctx.now(), kind=kind, run_id=ctx.run_id(), **extra
        )

    async def book_paid(self, line: LedgerEvent, suffix: str = "") -> bool:
        """Write a paid image's ledger line (idempotent by its id); False when it was there."""
        return await self.ctx.io(
            self.ctx.store.record_event, line, event_id=paid_event_id(line.user_id, line.request_key, suffix)
        )

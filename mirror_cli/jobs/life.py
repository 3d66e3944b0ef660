"""One paid job's life, in order. Each step is a module with one job; this one only calls them
and acts on what they return:

    claim     (claims)  a lease in the store, so nobody buys the job twice
    reserve   (money)   the estimate held against every cap
    moderate  (buy)     the free text screened before it reaches a provider
    buy       (buy)     the provider call, paced and retried; the paid image spooled at once
    finish    (finish)  post-process, quality gate, same face, then stored ok or flagged
    moderate  (moderation) the paid image checked before anyone sees it; flagged: kept hidden
    settle    (money)   the reservation settled to what was billed (and what may have been)
    release   (claims)  the claim goes once the result is in the cache

A job that needs no request (its image is in the spool, or cached) ends before it is claimed;
one that may not be bought is degraded (degrade) to the user's latest avatar or a fallback.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..consent import has_consent
from ..errors import MirrorError, RunStoppedError, StoreError, as_store_error
from ..pacing import ProviderFailure
from ..planner import OK_STATUSES
from ..telemetry.timing import step
from .buy import Buyer
from .cache import Cache
from .claims import Claims, look_claim_key
from .degrade import Degrade
from .finish import Finisher
from .moderation import Moderation, hidden_reason
from .money import Money, Refused
from .states import JobStates
from .types import JobSpec, Outcome, Unanswered, failed, is_free, plan

if TYPE_CHECKING:
    from ..models import AvatarRecord, ImageResult
    from ..planner import Job
    from ..stores.base import Claim, Reservation
    from .context import JobContext

_STATE_OF = {"generated": "done", "cached": "done", "ingested": "done", "failed": "failed"}


class JobLife:
    def __init__(self, ctx: JobContext, money: Money) -> None:
        self.ctx = ctx
        self.states = JobStates(ctx)
        self.claims = Claims(ctx)
        self.cache = Cache(ctx)
        self.money = money
        self.buyer = Buyer(ctx)
        self.finisher = Finisher(ctx, money)
        self.degrade = Degrade(ctx)
        self.moderation = Moderation(ctx)
        self._held: dict[tuple[str, str], Claim] = {}  # the claim each job in flight holds

    async def run(self, spec: JobSpec) -> Outcome:
        """Plan the spec, live the job, and leave its state in the run: a failure that concerns
        everybody (the store, the provider's account) stops the run, resumable."""
        ctx = self.ctx
        try:
            job = await plan(ctx, spec)
        except StoreError as exc:
            ctx.request_stop(f"the store is unavailable: {exc.message}")
            await self.states.put_safe(spec, "failed", "", exc.message)
            return Outcome(spec.persona.id, spec.target, "failed", reason=exc.message)
        except MirrorError as exc:
            await self.states.put(spec, "failed", detail=exc.message)
            return Outcome(spec.persona.id, spec.target, "failed", reason=exc.message)
        try:
            outcome = await self.live(job)
        except RunStoppedError as exc:
            ctx.request_stop(exc.message)
            await self.states.put(spec, "pending", job.request_key, detail=f"stopped: {exc.message}")
            return Outcome(job.user_id, job.target, "failed", reason=exc.message, request_key=job.request_key)
        except Exception as exc:  # a store or post-processing failure: the image stays in the spool
            store_error = as_store_error(exc)
            if store_error is not None:
                # No point buying images the store cannot hold: stop, leave the run resumable.
                ctx.request_stop(f"the store is unavailable: {store_error.message}")
                ctx.store_failure = store_error
                detail = store_error.message
            else:
                detail = f"{type(exc).__name__}: {exc}"
            await self.states.put_safe(spec, "failed", job.request_key, detail)
            return Outcome(job.user_id, job.target, "failed", reason=detail, request_key=job.request_key)
        state = _STATE_OF.get(outcome.status, "degraded")
        avatar_id = outcome.record.id if outcome.record else None
        await self.states.put_safe(spec, state, job.request_key, outcome.reason, avatar_id)
        return outcome

    async def live(self, job: Job) -> Outcome:
        """The steps in order; a free renderer has nothing to pay twice, so no claim. A paid job
        looks the cache up once, under its claim (where another owner's result is sure to show)."""
        early = await self.settled_without_request(job, lookup=is_free(job))
        if early is not None:
            return early
        if is_free(job):
            return await self._bought(job, None)
        look = look_claim_key(job)
        if look is None:
            return await self._claimed(job)
        with step("claim"):  # first the look: another request for it (other metrics) waits here
            held = await self.claims.acquire(job, lambda: self.same_look(job), key=look)
        if isinstance(held, Outcome):
            return held
        beat = asyncio.create_task(self.claims.heartbeat(held.claim))
        cancelled = False
        try:
            made = await self.same_look(job)  # made by the request that held the look before
            return made if made is not None else await self._claimed(job)
        except asyncio.CancelledError:
            cancelled = True  # its request may be in flight: the look's lease runs out first
            raise
        finally:
            beat.cancel()
            if not cancelled:
                await self.claims.release(held.claim.key, held.claim.owner)

    async def same_look(self, job: Job) -> Outcome | None:
        """This stage's avatar with this look (or this regeneration of it), made since the job was
        planned by another request that held its look: served as a cache hit, never bought again."""
        records = await self.ctx.io(self.ctx.store.list_avatars, job.user_id)
        same = [r for r in records if r.target == job.target and r.status in OK_STATUSES]
        if job.regeneration:
            made = same if len(same) > job.regeneration else []
        else:
            made = [r for r in same if r.look_key == job.look_key and r.stage == job.stage]
        if not made:
            return None
        job.existing = max(made, key=lambda r: r.created_at)
        return await self.settled_without_request(job)  # a hit (a hidden one is answered as such)

    async def _claimed(self, job: Job) -> Outcome:
        """The request's own claim, then the job bought under it."""
        with step("claim"):
            got = await self.claims.acquire(job, lambda: self.settled_without_request(job))
            if isinstance(got, Outcome):
                return got
            if got.taken_over is not None:  # its owner died: what it sent may have been billed
                await self.money.book_crashed(got.taken_over, job.user_id, job.target, job.request_key, take_over=True)
        beat = asyncio.create_task(self.claims.heartbeat(got.claim))
        cancelled = False
        self._held[(job.user_id, job.request_key)] = got.claim
        try:
            return await self._bought(job, got.claim)
        except asyncio.CancelledError:
            cancelled = True  # a request may be in flight: the lease expires and resume books it
            raise
        finally:
            beat.cancel()
            self._held.pop((job.user_id, job.request_key), None)
            if not cancelled:
                await self.claims.release(got.claim.key, got.claim.owner)

    async def _bought(self, job: Job, claim: Claim | None) -> Outcome:
        if claim is not None:
            early = await self.settled_without_request(job)  # another owner finished it just before
            if early is not None:
                return early
        if self.retry_due(job):
            return await self.resume_gate_retry(job)
        prepared = await self.screen_and_reserve(job)
        if isinstance(prepared, Outcome):
            return prepared
        if claim is not None and prepared is not None:
            await self.claims.note_reservation(claim, prepared)
        return await self.buy(job, prepared, may_retry=True)

    async def prepare(self, job: Job) -> Outcome | Reservation | None:
        """Everything before a provider call (the Batch API path): an Outcome when the job is
        settled without one, else the budget reservation for it (None for a free renderer)."""
        early = await self.settled_without_request(job)
        if early is not None:
            return early
        if self.retry_due(job):
            return await self.resume_gate_retry(job)
        return await self.screen_and_reserve(job)

    async def settled_without_request(self, job: Job, *, lookup: bool = True) -> Outcome | None:
        """An image paid for earlier and never stored is ingested, not bought again; an exact
        repeat is a cache hit at cost 0 (per user: keys include the user). ``lookup=False``:
        only what the plan knows already (the avatar of the same look), no cache read."""
        spooled = self.ctx.spool.get(job.user_id, job.request_key)
        aside = self.ctx.spool.take_set_aside(job.user_id, job.request_key)
        if aside is not None:  # its spend is booked before the image is bought again
            await self.money.book_damaged(job, aside)
        if (
            spooled is not None
            and spooled.result is not None
            and not await self.claims.held_by_live_owner(job.user_id, job.request_key)
        ):
            may_retry = spooled.meta.get("attempt") != "retry"
            return await self.finish(job, spooled.result, ingested=True, may_retry=may_retry)
        hit = await self.cache.find(job) if lookup else job.existing
        if hit is not None and hit.hidden_by is not None:  # reported: never served, not bought again unasked
            return await self.degrade(job, "degraded", f"avatar {hit.id} is hidden by report {hit.hidden_by}")
        return await self.cache.serve(job, hit)

    def retry_due(self, job: Job) -> bool:
        spooled = self.ctx.spool.get(job.user_id, job.request_key)
        return spooled is not None and spooled.retry_due

    async def screen_and_reserve(self, job: Job) -> Outcome | Reservation | None:
        """Blocked free text never reaches a provider; then the estimate is reserved against
        every cap before spending (free renderers have no caps)."""
        if job.blocked:
            return await self.degrade(job, "blocked", "content screen: " + "; ".join(job.blocked), fallback_only=True)
        flagged = await self.buyer.screen(job)
        if flagged is not None:
            return await self.degrade(job, "blocked", flagged, fallback_only=True)
        if is_free(job):
            return None
        with step("reserve"):
            return await self.reserve(job)

    async def reserve(self, job: Job) -> Reservation | Outcome:
        got = await self.money.reserve(job)
        if isinstance(got, Refused):
            out = await self.degrade(job, "degraded", got.reason)
            out.limit = got.limit
            return out
        return got

    async def buy(
        self, job: Job, reservation: Reservation | None, *, may_retry: bool, first_cost: float = 0.0
    ) -> Outcome:
        """Send the request (reserved), settle what it cost, and finish the job. Spend that may
        have been billed (a request sent whose answer never arrived) is settled too, never released."""
        await self.states.in_flight(job)
        maybe = Unanswered()
        claim = self._held.get((job.user_id, job.request_key))

        async def sending(sent_id: str) -> None:
            """Each request is recorded on the job's claim before it leaves: a process that dies
            with it in flight leaves exactly one may-have-billed request for recovery to book."""
            maybe.sent_id = sent_id
            if claim is not None:
                await self.claims.note_sent(claim, sent_id, job.estimate_usd)

        try:
            attempt = "first" if may_retry else "retry"
            result = await self.buyer.generate(job, self.money.booker(job, maybe), attempt=attempt, on_send=sending)
        except ProviderFailure as failure:
            await self.money.settle(reservation, 0.0, maybe.usd)
            if await self.buyer.failed(job, failure) == "blocked":
                outcome = await self.degrade(job, "blocked", f"moderation: {failure.message}", fallback_only=True)
            else:
                outcome = failed(job, failure.message)
            outcome.may_have_billed_usd = maybe.usd
            return outcome
        except BaseException:
            await self.money.settle(reservation, 0.0, maybe.usd)
            raise
        await self.money.settle(reservation, result.cost_usd, maybe.usd)
        outcome = await self.finish(job, result, ingested=False, may_retry=may_retry)
        outcome.cost_usd += first_cost
        outcome.may_have_billed_usd += maybe.usd
        return outcome

    async def finish(self, job: Job, result: ImageResult, *, ingested: bool, may_retry: bool = True) -> Outcome:
        """Post-process and gate; a rejected image is kept and bought once more (reinforced),
        an undecodable one kept for review; the rest stored, ok or flagged."""
        checked = await self.finisher.check(job, result)
        skipped = ""
        if self.finisher.wants_retry(checked.verdict, may_retry):
            await self.finisher.keep_rejected(job, result, checked, self.buyer.spool_meta(job, "first"))
            retried = await self.gate_retry(job, first_cost=result.cost_usd)
            if isinstance(retried, Outcome):
                return retried
            # no retry: the first image is stored flagged (the retry marker goes with it)
            skipped = retried
        if checked.img is None:
            return await self.finisher.keep_unusable(job, result, checked.verdict, ingested=ingested)
        moderation = await self.moderation.check(job, result)
        if moderation.verdict == "pending":  # never shown unchecked: kept in the spool for a later run
            await self.finisher.keep_unmoderated(job, result, moderation, ingested=ingested)
            outcome = await self.degrade(job, "degraded", hidden_reason(moderation))
        else:
            outcome = await self.finisher.store(job, result, checked, ingested=ingested, moderation=moderation)
            if outcome.record is not None and (moderation.verdict == "flagged" or outcome.record.hidden_by):
                outcome = await self.hide(job, outcome.record)
        outcome.cost_usd = 0.0 if ingested else result.cost_usd
        outcome.moderation = moderation
        if skipped and outcome.reason:
            outcome.reason += f" (no retry: {skipped})"
        return outcome

    async def hide(self, job: Job, hidden: AvatarRecord) -> Outcome:
        """A stored image that is hidden (moderation flagged it): the user gets the stage's
        fallback, never it, and it is not bought again."""
        reason = hidden_reason(hidden.moderation) if hidden.moderation else f"hidden by report {hidden.hidden_by}"
        outcome = await self.degrade(job, "blocked", reason, fallback_only=True)
        outcome.hidden = hidden
        return outcome

    async def gate_retry(self, job: Job, first_cost: float) -> Outcome | str:
        """Buy the reinforced retry; a string says why it could not be bought."""
        withheld = await self.photo_withheld(job)
        return withheld if withheld is not None else await self._buy_retry(job, first_cost)

    async def _buy_retry(self, job: Job, first_cost: float) -> Outcome | str:
        reservation: Reservation | None = None
        if not is_free(job):
            reserved = await self.reserve(job)
            if isinstance(reserved, Outcome):
                return reserved.reason or "no budget for the quality gate's retry"
            reservation = reserved
        ctx = self.ctx
        # the first request's inputs (the person's photo among them) and key, reinforced
        job.request = await ctx.io(ctx.planner.replan, job, reinforce=True)
        outcome = await self.buy(job, reservation, may_retry=False, first_cost=first_cost)
        if outcome.status == "failed" and outcome.record is None and first_cost:
            return outcome.reason or "the quality gate's retry failed"
        return outcome

    async def photo_withheld(self, job: Job) -> str | None:
        """Why the retry of a job drawn from the person's photo may not be bought: the photo is
        not here to draw from again (never the anchor instead, under the photo's key), or the
        user withdrew photo consent since the run read their profile."""
        if not job.photo_drawn:
            return None
        if job.photo is None:
            return "the photo the first image was drawn from is not available, and no other image stands in for it"
        persona = await self.ctx.io(self.ctx.store.get_user, job.user_id)
        if persona is None or not has_consent(persona, "photo"):
            return "the user withdrew consent to the use of their photo"
        return None

    async def resume_gate_retry(self, job: Job) -> Outcome:
        """A crash came after the first image was paid, kept as rejected and the retry marked.
        A retry due on a photo the job cannot use any more is skipped (degraded), never bought."""
        marker = self.ctx.spool.get(job.user_id, job.request_key)
        job.photo_drawn = job.photo_drawn or bool(marker is not None and marker.meta.get("photo"))
        withheld = await self.photo_withheld(job)
        if withheld is not None:
            return await self.degrade(job, "degraded", f"the quality gate's retry was skipped: {withheld}")
        outcome = await self._buy_retry(job, first_cost=0.0)
        if isinstance(outcome, Outcome):
            return outcome
        return failed(job, f"the quality gate's retry is still due: {outcome}")

"""What a run finds left by a process that died: requests in flight (booked as may-have-billed
where nobody will answer them) and paid images in the spool (stored, never bought again)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import MirrorError, ProviderError
from .claims import claim_key
from .types import Outcome, Unanswered

if TYPE_CHECKING:
    from ..models import ImageResult, Persona
    from ..planner import Job
    from ..stores.base import RunInfo
    from ..validate import Verdict
    from .life import JobLife


async def note_interrupted(life: JobLife, run: RunInfo | None) -> float:
    """Jobs left 'in flight' by a process that died: the provider may have billed a request
    whose answer never arrived (the API has no idempotency key). Where the claim's owner is
    dead (or its lease over) and no answer reached the spool, book it at its estimate as
    may-have-billed: call this before the spool is swept. Returns the USD booked."""
    if run is None:
        return 0.0
    ctx = life.ctx
    booked = 0.0
    for state in await ctx.io(ctx.store.job_states, run.id):
        if state.state != "in_flight":
            continue
        claim = await ctx.io(ctx.store.get_claim, claim_key(state.user_id, state.request_key))
        if claim is not None and life.claims.expired(claim):
            booked += await life.money.book_crashed(claim, state.user_id, state.target, state.request_key)
        elif claim is not None:
            continue  # its owner is alive: still in flight
        # the job is no longer in flight: it runs again in this attempt (or is settled at the end)
        await life.states.move(state, "pending", "its request was in flight when the process died")
    return booked


async def ingest_leftovers(life: JobLife, persona_of: Callable[[str], Persona]) -> list[Outcome]:
    """Finish every image a crashed run paid for and left in the spool, whether or not its
    job is planned now: store it (idempotent), write its ledger line (once), clear it."""
    ctx = life.ctx
    outcomes: list[Outcome] = []
    for uid, key in ctx.spool.pending():
        spooled = ctx.spool.get(uid, key)
        if spooled is None or spooled.result is None:
            continue  # a gate-retry marker is finished by the job itself (it is still due)
        if await life.claims.held_by_live_owner(uid, key):
            continue  # another process on this data dir is storing it right now
        target = spooled.meta.get("target")
        try:
            persona = await ctx.io(persona_of, uid)
            job = await ctx.io(ctx.planner.plan, persona, persona.progress, str(target))
        except MirrorError:
            continue  # an unknown user or target: leave the paid image where it is, for a person
        job.request_key = key  # the key it was paid under, even if the plan would differ today
        job.photo_drawn = bool(spooled.meta.get("photo"))  # its photo is not here: no retry from the anchor
        # the same rule as a planned job's ingest: a first answer the gate rejects again is kept
        # under the line its killed run may have booked already (':rejected'), and its retry is due
        may_retry = spooled.meta.get("attempt") != "retry"
        outcomes.append(await life.finish(job, spooled.result, ingested=True, may_retry=may_retry))
        # its dead owner's claim goes once the image is stored (the cache answers from now on),
        # and the reservation on it is settled at the answer's cost before it goes
        left = await ctx.io(ctx.store.get_claim, claim_key(uid, key))
        await life.money.settle_left_claim(left, spooled.result.cost_usd)
        await life.claims.release(claim_key(uid, key))
    return outcomes


async def render_asset(life: JobLife, job: Job) -> tuple[ImageResult, bytes, Verdict, bool]:
    """Render one shared asset (a fallback): spool, provider with retries, post-process, gate.
    Returns (result, webp bytes, verdict, paid)."""
    spooled = life.ctx.spool.get(job.user_id, job.request_key)
    paid = spooled is None
    if spooled and spooled.result:
        result = spooled.result
    else:
        result = await life.buyer.generate(job, life.money.booker(job, Unanswered()))
    checked = await asyncio.to_thread(life.finisher.post_process, result.data, job.request.size)
    if checked.img is None:
        raise ProviderError("The provider returned data that is not a readable image.", "Run seed-fallbacks again.")
    return result, checked.webp, checked.verdict, paid

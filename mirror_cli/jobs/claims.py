"""Claims and leases: a job is claimed in the store before its request, so overlapping runs,
shards and app requests never buy it twice. A live owner's claim is waited for; a dead owner's
(or one past its lease) is taken over and handed back to the caller, who books what that owner's
request may have billed. The lease is the machine's time (``ctx.wall``): other processes read it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..errors import MirrorError
from ..stores.base import Claim, ClaimResult, Reservation
from .types import Outcome, failed, reservation_info

if TYPE_CHECKING:
    from ..planner import Job
    from .context import JobContext


def claim_key(uid: str, request_key: str) -> str:
    return f"{uid}/{request_key}"


def look_claim_key(job: Job) -> str | None:
    """The claim on what decides the avatar's look (and which regeneration of it): two requests
    for one stage whose prompts differ only by progress still make one image, one after the other."""
    return f"{job.user_id}/look.{job.look_key}.r{job.regeneration}" if job.look_key else None


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


def new_owner() -> str:
    """Who holds a pipeline's claims: host and process (a dead local owner is detected at once)."""
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ClaimLostError(MirrorError):
    """This process no longer holds the job's claim (its lease ran out and another took it)."""


@dataclass
class Acquired:
    claim: Claim
    taken_over: Claim | None  # a dead owner's claim: its request may have been billed


class Claims:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def lease_until(self, seconds: float | None = None) -> datetime:
        return self.ctx.wall() + timedelta(seconds=seconds or self.ctx.configs.limits.claims.lease_s)

    def new_claim(
        self, job: Job, lease_s: float | None = None, owner: str | None = None, key: str | None = None
    ) -> Claim:
        return Claim(
            key=key or claim_key(job.user_id, job.request_key),
            owner=owner or self.ctx.owner,
            lease_until=self.lease_until(lease_s),
            created_at=self.ctx.now(),
            info={"run_id": self.ctx.run_id(), "job_id": job.job_id, "estimate_usd": job.estimate_usd},
        )

    async def acquire(
        self, job: Job, settled: Callable[[], Awaitable[Outcome | None]], key: str | None = None
    ) -> Acquired | Outcome:
        """Claim the job before its request (``key``: another claim of it, its look's). Held by a
        live owner: wait (asking ``settled`` for its result, a cache hit) up to claims.wait_s.
        Held by a dead owner, or past its lease: take it over."""
        ctx = self.ctx
        cfg = ctx.configs.limits.claims
        give_up = time.monotonic() + cfg.wait_s
        steal: str | None = None
        while True:
            claim = self.new_claim(job, key=key)
            result: ClaimResult = await ctx.io(ctx.store.claim, claim, ctx.wall(), steal)
            if result.acquired:
                return Acquired(claim, result.previous)
            current = result.current
            if current is not None and owner_dead(current.owner):
                steal = current.owner
                continue
            steal = None
            if time.monotonic() >= give_up:
                holder = current.owner if current else "?"
                return failed(job, f"in flight in another process ({holder}); not bought twice")
            await asyncio.sleep(cfg.poll_s)
            early = await settled()  # the other owner's result
            if early is not None:
                return early

    async def held_by_live_owner(self, uid: str, request_key: str) -> bool:
        """Is this request claimed by another process that is still alive (and within its lease)?"""
        claim = await self.ctx.io(self.ctx.store.get_claim, claim_key(uid, request_key))
        return (
            claim is not None
            and claim.owner != self.ctx.owner
            and not owner_dead(claim.owner)
            and claim.lease_until >= self.ctx.wall()
        )

    def expired(self, claim: Claim) -> bool:
        """Its owner died, or its lease is over: nobody will finish its request."""
        return owner_dead(claim.owner) or claim.lease_until < self.ctx.wall()

    async def note_reservation(self, claim: Claim, r: Reservation) -> None:
        """Keep the job's reservation on its claim: whoever takes the claim over settles it."""
        claim.info["reservation"] = reservation_info(r)
        with contextlib.suppress(MirrorError):
            await self.ctx.io(
                self.ctx.store.renew_claim,
                claim.key,
                claim.owner,
                self.lease_until(),
                {"reservation": claim.info["reservation"]},
            )

    async def note_sent(self, claim: Claim, sent_id: str, estimate_usd: float) -> None:
        """Record on the claim that a request is about to leave (its id and estimate). Not
        recorded, not sent: a store that cannot take it stops the run, and a claim taken over
        meanwhile by another process fails this job (that process owns it now)."""
        ctx = self.ctx
        sent = {"id": sent_id, "estimate_usd": estimate_usd}
        if not await ctx.io(ctx.store.renew_claim, claim.key, claim.owner, self.lease_until(), {"sent": sent}):
            raise ClaimLostError(
                f"The claim on {claim.key} passed to another process; the request was not sent.",
                "Nothing to do: the other process finishes the job.",
            )

    async def heartbeat(self, claim: Claim) -> None:
        every = self.ctx.configs.limits.claims.lease_s / 3
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(MirrorError):
                await self.ctx.io(self.ctx.store.renew_claim, claim.key, claim.owner, self.lease_until())

    async def release(self, key: str, owner: str | None = None) -> None:
        """Best effort: a claim left behind expires with its lease."""
        with contextlib.suppress(Exception):
            await self.ctx.io(self.ctx.store.release_claim, key, owner)

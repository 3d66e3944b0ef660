"""The cache step: an exact repeat of a request (same user, same key) is served from the store at
cost 0, within the cache's time to live. A hit on an avatar a report hides (mirror_cli/reporting.py)
is answered like a degraded job: the user's latest shown avatar, else the stage's fallback."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..models import AvatarRecord
from ..telemetry.timing import current as timing_now
from .types import Outcome

if TYPE_CHECKING:
    from ..planner import Job
    from .context import JobContext


class Cache:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    async def lookup(self, job: Job) -> AvatarRecord | None:
        ctx = self.ctx
        entry = await ctx.io(ctx.store.cache_get, job.user_id, job.request_key)
        if entry is None:
            return None
        ttl = timedelta(days=ctx.configs.limits.cache_ttl_days)
        if ctx.now() - entry.created_at > ttl:
            return None
        return await ctx.io(ctx.store.get_avatar, job.user_id, entry.avatar_id)

    async def serve(self, job: Job) -> Outcome | None:
        """A hit, booked as one (cost 0); None on a miss. A stage the user already has with the
        same look is a hit too, whatever their metrics say now."""
        hit = job.existing or await self.lookup(job)
        if hit is None:
            return None
        if hit.hidden_by is not None:  # reported: never served; the stage is not bought again unasked
            from .degrade import Degrade

            reason = f"avatar {hit.id} is hidden by report {hit.hidden_by}"
            return await Degrade(self.ctx)(job, "degraded", reason)
        await self.ctx.book(
            job, "cache_hit", avatar_id=hit.id, provider=hit.provider, model=hit.model, timings=timing_now()
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

"""The cache step: an exact repeat of a request (same user, same key) is served from the store at
cost 0, within the cache's time to live. A hit on an avatar a report hides (mirror_cli/reporting.py)
is not served here: the job's life degrades it (the user's latest shown avatar, else the fallback)."""

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

    async def find(self, job: Job) -> AvatarRecord | None:
        """The job's hit: a stage the user already has with the same look (whatever their metrics
        say now), else the cache's entry. A hidden one is the caller's to answer (life.py)."""
        return job.existing or await self.lookup(job)

    async def serve(self, job: Job, hit: AvatarRecord | None) -> Outcome | None:
        """``hit`` (from ``find``) booked as a cache hit (cost 0); None on a miss."""
        if hit is None:
            return None
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

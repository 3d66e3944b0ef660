"""Degradation: when a job cannot (or may not) be bought, the user is served their latest avatar,
or the stage's fallback asset, and the ledger says why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..planner import shown
from .types import Outcome

if TYPE_CHECKING:
    from ..planner import Job
    from .context import JobContext


class Degrade:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    async def __call__(self, job: Job, status: Any, reason: str, fallback_only: bool = False) -> Outcome:
        """Serve the user's latest avatar (unless ``fallback_only``), else the stage's fallback."""
        ctx = self.ctx
        latest = None
        if not fallback_only:
            good = [r for r in await ctx.io(ctx.store.list_avatars, job.user_id) if shown(r)]
            latest = good[-1] if good else None
        served: str | None
        if latest is not None:
            served, kind = latest.image_path, "degraded"
            record = latest
        else:
            asset = await ctx.io(ctx.fallbacks.pick, job.target, job.persona)
            served, kind = (str(asset) if asset else None), "fallback"
            record = None
            status = "blocked" if status == "blocked" else "fallback"
        kind = kind if status != "blocked" else "blocked"
        await ctx.book(job, kind, avatar_id=latest.id if latest else None, detail=reason)
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

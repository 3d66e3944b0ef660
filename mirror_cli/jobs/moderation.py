"""Image moderation: every paid image is checked before anyone sees it (after the quality gate,
before its record is stored). The verdict goes on the avatar and on the ledger:

    clean     shown
    flagged   kept hidden (never listed, never current), the user gets the fallback
    skipped   shown; the provider has no image moderation (the offline renderer) or it is off
    pending   the check failed: the paid image stays in the spool, hidden, and a later run
              checks it again (it is never bought twice)

Moderation is free: nothing here books spend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import ModerationVerdict
from ..pacing import ProviderFailure, RetryStats, call_with_retries
from ..providers.base import ImageModerator
from ..telemetry.timing import step

if TYPE_CHECKING:
    from ..models import ImageResult
    from ..planner import Job
    from .context import JobContext


class Moderation:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    async def check(self, job: Job, result: ImageResult) -> ModerationVerdict:
        """The verdict on one paid image (the bytes the provider answered with)."""
        ctx = self.ctx
        cfg = ctx.configs.limits.image_moderation
        provider = ctx.provider
        if not cfg.enabled:
            return self.verdict("skipped", detail="image moderation is turned off (limits.image_moderation)")
        if not isinstance(provider, ImageModerator):
            return self.verdict("skipped", detail=f"the {ctx.planner.provider_name} provider has no image moderation")
        try:
            with step("moderation"):
                # its own retry figures: a moderation call is free, never a request that may have billed
                categories = await call_with_retries(
                    lambda: provider.moderate_image(result.data, result.mime, cfg.model),
                    ctx.configs.limits.retry,
                    None,
                    0,
                    RetryStats(),
                )
        except ProviderFailure as failure:
            cause = f"{failure.status or ''} {failure.code or failure.kind}".strip()
            return self.verdict(
                "pending",
                cfg.model,
                detail=f"moderation unavailable ({cause}): kept hidden in the spool, checked again by the next run",
            )
        if categories:
            return self.verdict("flagged", cfg.model, categories)
        return self.verdict("clean", cfg.model)

    def verdict(
        self, state: str, model: str | None = None, categories: list[str] | None = None, detail: str | None = None
    ) -> ModerationVerdict:
        return ModerationVerdict.model_validate(
            {
                "verdict": state,
                "model": model,
                "categories": categories or [],
                "checked_at": self.ctx.now(),
                "detail": detail,
            }
        )


def hidden_reason(verdict: ModerationVerdict) -> str:
    """Why a paid image is not shown (the run report and the ledger say it)."""
    if verdict.verdict == "flagged":
        return f"image moderation flagged: {', '.join(verdict.categories)}; the image is kept hidden"
    return verdict.detail or "image moderation pending"

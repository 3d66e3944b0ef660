"""Buying: the moderation screen on a job's free text, the provider call (paced, retried, once
more with the style's safe prompt when the provider's moderation refuses it), its exact cost, and
the spool — a paid image is written there before anything else touches it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from .. import pricing
from ..errors import RunStoppedError
from ..models import ImageResult
from ..pacing import ProviderFailure, call_with_retries
from ..telemetry import hooks
from ..telemetry.timing import step

if TYPE_CHECKING:
    from ..planner import Job
    from .context import JobContext

OnUnanswered = Callable[[ProviderFailure], Awaitable[None]]


def stop_hint(failure: ProviderFailure) -> str:
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


class Buyer:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    async def screen(self, job: Job) -> str | None:
        """The provider's moderation endpoint on the job's free text (when configured): the
        reason to block it, or None. Unavailable: the job's request loses its free text."""
        ctx = self.ctx
        cfg = ctx.configs.limits.moderation
        moderate = getattr(ctx.provider, "moderate", None)
        progress = job.progress
        texts = [
            t
            for t in [*progress.discovered_traits, progress.major_achievement or "", job.persona.appearance.description]
            if t
        ]
        if not cfg.enabled or moderate is None or not texts:
            return None
        try:
            categories: list[str] = await call_with_retries(
                lambda: moderate(texts, cfg.model), ctx.configs.limits.retry, None, 0, ctx.stats
            )
        except ProviderFailure as failure:
            if failure.kind == "stop":
                raise RunStoppedError(failure.message, stop_hint(failure)) from None
            # The screen is unavailable: send no free text at all rather than unscreened text.
            await self._replan_safe(job)
            return None
        return f"moderation screen flagged: {', '.join(categories)}" if categories else None

    async def _replan_safe(self, job: Job) -> None:
        ctx = self.ctx
        job.request = await ctx.io(ctx.planner.replan, job, safe=True)  # the photo kept

    async def generate(
        self,
        job: Job,
        on_unanswered: OnUnanswered | None = None,
        attempt: str = "first",
        on_send: Callable[[str], Awaitable[None]] | None = None,
    ) -> ImageResult:
        """Call the provider (paced, retried) and spool the paid image before anything else.
        ``on_unanswered`` books each request that was sent and never answered."""
        ctx = self.ctx

        async def call() -> ImageResult:
            if on_send is not None:  # recorded before the request leaves (each retry is a request)
                await on_send(uuid.uuid4().hex[:12])
            res = await ctx.provider.generate(job.request)
            if ctx.limiter and res.rate_headers:
                ctx.limiter.observe_headers(res.rate_headers)
            return res

        async def send() -> ImageResult:
            with step("provider"):
                return await call_with_retries(
                    call,
                    ctx.configs.limits.retry,
                    ctx.limiter,
                    job.tokens_estimate,
                    ctx.stats,
                    on_unanswered=on_unanswered,
                )

        try:
            result = await send()
        except ProviderFailure as failure:
            if failure.kind != "moderation":
                raise
            # Never retried as is: once more with the style's safe prompt (no free text), then fallback.
            await self.book_failure(job, failure, kind="blocked")
            await self._replan_safe(job)
            result = await send()
        hooks.provider_answered(result)
        result.cost_usd = pricing.cost_from_usage(
            job.model_entry, result.usage, batch=ctx.planner.provider_name.endswith("-batch")
        )
        self.spool_result(job, result, attempt=attempt)
        return result

    async def failed(self, job: Job, failure: ProviderFailure) -> Literal["blocked", "failed"]:
        """Book a request the provider refused; a failure that concerns everybody stops the run."""
        if failure.kind == "stop":
            await self.book_failure(job, failure, kind="failed")
            raise RunStoppedError(failure.message, stop_hint(failure))
        if failure.kind == "moderation":
            await self.book_failure(job, failure, kind="blocked")
            return "blocked"
        await self.book_failure(job, failure, kind="failed")
        return "failed"

    async def book_failure(self, job: Job, failure: ProviderFailure, kind: Any) -> None:
        await self.ctx.book(
            job,
            kind,
            provider=self.ctx.planner.provider_name,
            model=job.model_name,
            request_id=failure.request_id,
            detail=f"{failure.status or ''} {failure.code or failure.kind}".strip(),
        )

    def spool_result(self, job: Job, result: ImageResult, attempt: str = "first") -> None:
        """A paid image goes to the spool before anything else touches it."""
        self.ctx.spool.put(job.user_id, job.request_key, result, self.spool_meta(job, attempt))

    def spool_meta(self, job: Job, attempt: str) -> dict[str, Any]:
        return {
            "user_id": job.user_id,
            "target": job.target,
            "request_key": job.request_key,
            "run_id": self.ctx.run_id(),
            "created_at": self.ctx.now().isoformat(),
            "attempt": attempt,  # "retry": the gate's second request, never retried again
            "estimate_usd": job.estimate_usd,
            # drawn from the person's photo: withdrawing photo consent removes what is left of it
            "photo": job.photo_drawn,
        }

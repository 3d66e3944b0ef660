"""Finishing a paid image: post-process it (off the event loop), judge it with the quality gate,
score the same face against the user's anchor, then keep it — stored ok or flagged (never bought
again over a heuristic), kept as rejected before the gate's one retry, or kept as unusable — and
write its record, due rank, ledger line and cache entry before the spool lets go of it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import identity, imaging, messages
from ..errors import MirrorError
from ..identity import IdentityScore
from ..models import AvatarRecord, ImageResult, LedgerEvent, ModerationVerdict
from ..reporting import file_system_report
from ..stores.base import CacheEntry
from ..stores.reports import report_id
from ..telemetry.timing import current as timing_now
from ..telemetry.timing import step
from ..validate import Verdict, check_image, parse_size, undecodable
from .types import Outcome

if TYPE_CHECKING:
    from ..models import JobTimings
    from ..planner import Job
    from .context import JobContext


@dataclass
class Checked:
    """A post-processed answer: the image (None when undecodable), its webp and thumbnail, the verdict."""

    img: Any
    webp: bytes
    thumb: bytes | None
    verdict: Verdict


class PaidLedger(Protocol):
    """Where a paid image's ledger line is written (the money step)."""

    def paid_line(self, job: Job, result: ImageResult, kind: str, **extra: Any) -> LedgerEvent: ...
    async def book_paid(self, line: LedgerEvent, suffix: str = "") -> bool: ...


class Finisher:
    def __init__(self, ctx: JobContext, money: PaidLedger) -> None:
        self.ctx = ctx
        self.money = money  # writes the paid image's ledger line

    def post_process(self, data: bytes, size_text: str) -> Checked:
        """An undecodable answer is a hard failure of the gate."""
        expected = parse_size(size_text)
        try:
            img, webp, thumb = imaging.post_process(data, expected)
        except MirrorError as exc:
            return Checked(None, b"", None, undecodable(exc.message))
        return Checked(img, webp, thumb, check_image(img, self.ctx.configs.style.gate, expected))

    async def check(self, job: Job, result: ImageResult) -> Checked:
        # Pillow work runs off the event loop so pacing and other users' requests keep moving.
        with step("post_process"):
            return await asyncio.to_thread(self.post_process, result.data, job.request.size)

    def wants_retry(self, verdict: Verdict, may_retry: bool) -> bool:
        """A hard failure (or a heuristic one, where the style opted in) earns one reinforced retry."""
        gate = self.ctx.configs.style.gate
        return not verdict.ok and may_retry and gate.enabled and (verdict.hard or gate.retry_on_heuristic)

    async def keep_rejected(self, job: Job, result: ImageResult, checked: Checked, meta: dict[str, Any]) -> None:
        """Keep the paid image the gate rejected (a 'rejected' file and its ledger line), then turn
        its spool entry into the retry marker with one rename: a crash from here on resumes with
        the retry, never with the first request again."""
        ctx = self.ctx
        kept = checked.webp or result.data
        ref, _ = await ctx.io(ctx.store.put_image, job.user_id, rejected_name(job), kept, None)
        detail = f"rejected by the quality gate ({'; '.join(checked.verdict.failures)}); kept at {ref}"
        await self.money.book_paid(
            self.money.paid_line(job, result, "generated", validation_ok=False, detail=detail), ":rejected"
        )
        ctx.spool.mark_retry(job.user_id, job.request_key, {**meta, "rejected": ref})

    async def keep_unusable(self, job: Job, result: ImageResult, verdict: Verdict, *, ingested: bool) -> Outcome:
        """Undecodable and no second try: keep the paid bytes for review, report it failed."""
        ctx = self.ctx
        ref, _ = await ctx.io(ctx.store.put_image, job.user_id, rejected_name(job), result.data, None)
        detail = f"paid but unusable ({'; '.join(verdict.failures)}); kept at {ref}"
        await self.money.book_paid(
            self.money.paid_line(job, result, _kind(ingested), validation_ok=False, detail=detail)
        )
        ctx.spool.remove(job.user_id, job.request_key)
        return Outcome(
            job.user_id,
            job.target,
            "failed",
            cost_usd=0.0 if ingested else result.cost_usd,
            estimate_usd=job.estimate_usd,
            request_key=job.request_key,
            reason="quality gate: " + "; ".join(verdict.failures),
            validation=verdict.to_dict(),
        )

    async def keep_unmoderated(
        self, job: Job, result: ImageResult, moderation: ModerationVerdict, *, ingested: bool
    ) -> None:
        """The check failed: the paid image stays in the spool, hidden (a later run checks it
        again and stores it); its spend is booked now, once, with the verdict 'pending'."""
        line = self.money.paid_line(job, result, _kind(ingested), moderation=moderation, detail=moderation.detail)
        await self.money.book_paid(line)

    async def book_verdict(self, job: Job, moderation: ModerationVerdict, avatar_id: str | None) -> None:
        """A verdict reached after the image's paid line was booked: a line of its own (cost 0)."""
        await self.ctx.book(
            job,
            "moderation",
            event_id=f"moderation:{job.user_id}:{job.request_key}",
            avatar_id=avatar_id,
            model=moderation.model or "",
            moderation=moderation,
            detail=moderation.detail,
        )

    async def store(
        self, job: Job, result: ImageResult, checked: Checked, *, ingested: bool, moderation: ModerationVerdict
    ) -> Outcome:
        """Store a decodable image, ok or flagged (hidden when moderation flagged it), with its
        record, ledger line and cache entry."""
        verdict = checked.verdict
        status: Any = "ok" if verdict.ok else "flagged"
        reasons = [] if verdict.ok else ["quality gate: " + "; ".join(verdict.failures)]
        with step("post_process"):
            same_face = await self.same_face(job, checked.img)
        if same_face is not None and same_face.drift:  # flagged for a person; never bought again
            status = "flagged"
            reasons.append(f"identity drift: distance {same_face.distance} > {same_face.threshold} from the anchor")
        hidden_by = None
        if moderation.verdict == "flagged":  # hidden from its first write; the cache entry stops a re-buy
            hidden_by = report_id(job.user_id, job.avatar_id)
            reasons.insert(0, f"image moderation flagged: {', '.join(moderation.categories)}")
        stored = await self._write(job, result, checked, status, reasons, same_face, moderation, hidden_by, ingested)
        if hidden_by is not None:  # listed in `mirror reports` for an operator to restore or remove
            await self.report_flagged(stored, moderation, "; ".join(reasons))
        self.ctx.spool.remove(job.user_id, job.request_key)
        outcome = Outcome(
            job.user_id,
            job.target,
            "ingested" if ingested else "generated",
            record=stored,
            served_path=stored.image_path,
            cost_usd=0.0 if ingested else result.cost_usd,
            estimate_usd=job.estimate_usd,
            request_key=job.request_key,
            message=stored.message,
            reason=None if verdict.ok else "stored flagged by the quality gate: " + "; ".join(verdict.failures),
            validation=verdict.to_dict(),
        )
        if not verdict.ok and self.ctx.configs.style.gate.on_fail == "fallback":
            # stored flagged for a person; the user is served the stage's fallback meanwhile
            asset = await self.ctx.io(self.ctx.fallbacks.pick, job.target, job.persona)
            outcome.status, outcome.served_path, outcome.message = "fallback", str(asset) if asset else None, ""
            outcome.reason = "quality gate failed: " + "; ".join(verdict.failures)
        return outcome

    async def report_flagged(self, stored: AvatarRecord, moderation: ModerationVerdict, note: str) -> None:
        """File the moderation's report on a flagged image (it hides the avatar; a repeat after a
        crash finds the report already open)."""
        ctx = self.ctx
        verdict = moderation.model_dump(mode="json")
        await ctx.io(file_system_report, ctx.store, stored, "moderation", verdict, note=note, now=ctx.now())

    async def _write(
        self,
        job: Job,
        result: ImageResult,
        checked: Checked,
        status: Any,
        reasons: list[str],
        same_face: IdentityScore | None,
        moderation: ModerationVerdict,
        hidden_by: str | None,
        ingested: bool,
    ) -> AvatarRecord:
        """Image, then the record, due rank, ledger line and cache entry; returns the record
        stored (an earlier attempt's, when one was already there)."""
        ctx = self.ctx
        avatar_id = job.avatar_id
        with step("store"):
            image_ref, thumb_ref = await ctx.io(
                ctx.store.put_image, job.user_id, f"{job.target}-{avatar_id}", checked.webp, checked.thumb
            )
        timings = timing_now()
        record = self._record(job, result, checked, image_ref, thumb_ref, status, reasons, same_face, timings)
        record.moderation, record.hidden_by = moderation, hidden_by
        # The record, the due index and the ledger line are independent writes: they go out
        # together (each is idempotent, and the spool keeps the image until all are done).
        rank = ctx.configs.stages.index(job.stage) if job.target in ctx.configs.stages.names else None
        # One paid image, one ledger line, however often a crash makes us come back here.
        line = self.money.paid_line(
            job,
            result,
            _kind(ingested),
            avatar_id=avatar_id,
            validation_ok=checked.verdict.ok,
            identity_distance=same_face.distance if same_face else None,
            identity_drift=same_face.drift if same_face else None,
            timings=timings,
            moderation=moderation,
        )
        with step("store"):  # the outcome's store time counts these writes too; the record's cannot
            created, _, booked = await asyncio.gather(
                ctx.io(ctx.store.put_avatar, record),
                ctx.io(ctx.store.raise_latest_rank, job.user_id, rank) if rank is not None else asyncio.sleep(0),
                self.money.book_paid(line),
            )
            if not booked:  # booked before the verdict (a check that failed, or a crash): it goes on a line of its own
                await self.book_verdict(job, moderation, avatar_id)
            # A record stored by an earlier attempt stays as it was: report that one.
            earlier = None if created else await ctx.io(ctx.store.get_avatar, job.user_id, avatar_id)
            stored = earlier or record
            await ctx.io(ctx.store.cache_put, CacheEntry(job.user_id, job.request_key, avatar_id, stored.created_at))
        return stored

    def _record(
        self,
        job: Job,
        result: ImageResult,
        checked: Checked,
        image_ref: str,
        thumb_ref: str | None,
        status: Any,
        reasons: list[str],
        same_face: IdentityScore | None,
        timings: JobTimings | None,
    ) -> AvatarRecord:
        return AvatarRecord(
            id=job.avatar_id,
            user_id=job.user_id,
            target=job.target,
            stage=job.stage,
            request_key=job.request_key,
            image_path=image_ref,
            thumb_path=thumb_ref,
            width=checked.img.width,
            height=checked.img.height,
            provider=result.provider,
            model=result.model,
            quality=job.request.quality,
            cost_usd=result.cost_usd,
            usage=result.usage,
            request_id=result.request_id,
            prompt=job.request.prompt,
            references=job.request.references,
            message=self.message(job),
            cues=list(job.parts.cues),
            look_key=job.look_key,
            status=status,
            reason="; ".join(reasons) or None,
            validation=checked.verdict.to_dict(),
            identity=same_face.to_dict() if same_face else {},
            created_at=self.ctx.now(),
            timings=timings,
        )

    async def same_face(self, job: Job, img: Any) -> IdentityScore | None:
        """The same-face score against the user's anchor (optional extra; None when skipped)."""
        ctx = self.ctx
        cfg = ctx.configs.style.identity
        if not cfg.enabled or not identity.available_once()[0]:
            return None
        anchor = job.anchor  # as the plan found it: a repeat of the job scores against the same one
        if anchor is None or anchor.target == job.target:
            return None  # this image is (or replaces) the anchor
        data = await ctx.io(ctx.store.read_image, anchor.image_path)
        try:
            return await asyncio.to_thread(identity.score, data, anchor.id, img, cfg.threshold)
        except Exception as exc:  # a score is advice: never lose or re-buy an image over it
            return IdentityScore(None, cfg.threshold, anchor.id, f"not measured: {type(exc).__name__}: {exc}")

    def message(self, job: Job) -> str:
        c = self.ctx.configs
        return messages.avatar_message(
            c, job.persona, job.target, job.stage, job.label, job.progress, job.parts.cues, job.previous
        )


def _kind(ingested: bool) -> str:
    return "spool_ingest" if ingested else "generated"


def rejected_name(job: Job) -> str:
    """The stored name of a paid image the gate rejected; ``rejected-photo-`` when it was drawn
    from the person's photo, so a withdrawal of photo consent finds it (consent.forget_photo_data)."""
    photo = "photo-" if job.photo_drawn else ""
    return f"rejected-{photo}{job.target}-{job.avatar_id}"

"""What every step of a job shares: the job to run (a spec), how it ended (an outcome), a run's
report, and the two small facts every step asks (is the model free? how did a job fail?).
Nothing here calls a store or a provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..models import AvatarRecord, JobTimings, ModerationVerdict, Persona, Progress
from ..pacing import RetryStats

if TYPE_CHECKING:
    from ..imaging import Photo
    from ..planner import Job
    from ..stores.base import Reservation, Store
    from .context import JobContext

SKIPPED_TARGET = "profile"  # the target named for a user skipped before any job was planned

Status = Literal["generated", "cached", "ingested", "degraded", "fallback", "failed", "blocked", "planned", "skipped"]


@dataclass
class JobSpec:
    persona: Persona
    progress: Progress
    target: str
    photo: Photo | None = None
    regenerate: bool = False  # one more paid image of a target the user already has (limited)

    @property
    def job_id(self) -> str:
        return f"{self.persona.id}.{self.target}"


@dataclass
class Outcome:
    user_id: str
    target: str
    status: Status
    record: AvatarRecord | None = None
    served_path: str | None = None
    image_url: str | None = None
    reason: str | None = None
    cost_usd: float = 0.0
    estimate_usd: float = 0.0
    request_key: str = ""
    message: str = ""
    validation: dict[str, Any] = field(default_factory=dict)
    may_have_billed_usd: float = 0.0  # requests sent whose answer never arrived, at their estimate
    limit: str | None = None  # the cap that refused the job (LimitReached.kind, or run_budget)
    timings: JobTimings | None = None  # where the job's time went (telemetry.timing)
    moderation: ModerationVerdict | None = None  # the verdict on the image this job paid for or ingested
    hidden: AvatarRecord | None = None  # the paid image kept hidden (moderation flagged it), never served

    def to_dict(self, store: Store | None = None) -> dict[str, Any]:
        r = self.record
        return {
            "user": self.user_id,
            "target": self.target,
            "status": self.status,
            "cached": self.status == "cached",
            "avatar_id": r.id if r else None,
            "image_path": self.served_path,
            "image_url": self.image_url,
            "thumb_path": r.thumb_path if r else None,
            "width": r.width if r else None,
            "height": r.height if r else None,
            "cost_usd": round(self.cost_usd, 6),
            "may_have_billed_usd": round(self.may_have_billed_usd, 6),
            "estimate_usd": round(self.estimate_usd, 6),
            "request_key": self.request_key,
            "reason": self.reason,
            "message": self.message,
            "quality_gate": self.validation or None,
            "moderation": self.moderation.model_dump(mode="json") if self.moderation else None,
            "hidden_avatar_id": self.hidden.id if self.hidden else None,
        }


@dataclass
class RunReport:
    outcomes: list[Outcome] = field(default_factory=list)
    run_id: str | None = None
    stopped: str | None = None
    store_error: str | None = None  # the store could not be written (a full disk): exit 8
    elapsed_s: float = 0.0
    retries: RetryStats = field(default_factory=RetryStats)
    alerts: list[Any] = field(default_factory=list)  # telemetry.alerts.Alert raised by this run (new ones)
    # a nightly tick's figures (mirror_cli.tick.TickPlan.summary): in window, due, served, left
    tick: dict[str, Any] | None = None
    skipped_users: dict[str, str] = field(default_factory=dict)  # user -> why they were left out

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    extra_may_have_billed_usd: float = 0.0  # booked for jobs of an earlier, killed process

    @property
    def cost_usd(self) -> float:
        return round(sum(o.cost_usd for o in self.outcomes), 6)

    @property
    def may_have_billed_usd(self) -> float:
        return round(sum(o.may_have_billed_usd for o in self.outcomes) + self.extra_may_have_billed_usd, 6)

    @property
    def degraded(self) -> int:
        return self.count("degraded", "fallback", "blocked")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "jobs": len(self.outcomes),
            "generated": self.count("generated"),
            "cached": self.count("cached"),
            "ingested": self.count("ingested"),
            "degraded": self.degraded,
            "failed": self.failed,
            "skipped": self.count("skipped"),
            "planned": self.count("planned"),
            "cost_usd": self.cost_usd,
            "may_have_billed_usd": self.may_have_billed_usd,
            "estimate_usd": round(sum(o.estimate_usd for o in self.outcomes if o.status == "planned"), 6),
            "stopped": self.stopped,
            "store_error": self.store_error,
            "elapsed_s": round(self.elapsed_s, 3),
            "retries": self.retries.retries,
            "rate_limited": self.retries.rate_limited,
            "unanswered": self.retries.unanswered,
            "alerts": [a.to_dict() for a in self.alerts],
            "skipped_users": [{"user": u, "reason": r} for u, r in self.skipped_users.items()],
            "moderation": self.moderation_counts(),
            **({"tick": self.tick} if self.tick is not None else {}),
            **({"notes": self.notes()} if self.notes() else {}),
        }

    def moderation_counts(self) -> dict[str, int]:
        """Image moderation verdicts of the images this run paid for or ingested."""
        counts: dict[str, int] = {}
        for o in self.outcomes:
            if o.moderation is not None:
                counts[o.moderation.verdict] = counts.get(o.moderation.verdict, 0) + 1
        return counts

    def notes(self) -> list[str]:
        """What the operator should know about this run's images (image moderation)."""
        counts = self.moderation_counts()
        out: list[str] = []
        if counts.get("skipped"):
            why = next(o.moderation.detail for o in self.outcomes if o.moderation and o.moderation.verdict == "skipped")
            out.append(f"image moderation skipped for {counts['skipped']} image(s): {why}")
        if counts.get("flagged"):
            out.append(
                f"image moderation flagged {counts['flagged']} paid image(s): kept hidden, the user got the "
                "fallback, not bought again"
            )
        if counts.get("pending"):
            out.append(
                f"image moderation was unavailable for {counts['pending']} paid image(s): kept hidden in the "
                "spool, checked again by the next run"
            )
        return out


@dataclass
class Unanswered:
    """Requests of one job that were sent and never answered (booked at the job's estimate)."""

    usd: float = 0.0
    count: int = 0
    sent_id: str = ""  # the id of the request last sent (recorded on the claim before it left)


async def plan(ctx: JobContext, spec: JobSpec) -> Job:
    """The spec's job, planned now (off the event loop)."""
    return await ctx.io(
        ctx.planner.plan,
        spec.persona,
        spec.progress,
        spec.target,
        photo=spec.photo,
        regenerate=spec.regenerate,
    )


def failed(job: Job, reason: str) -> Outcome:
    """A job that ends failed with nothing stored: its key and estimate stay in the report."""
    return Outcome(
        job.user_id, job.target, "failed", reason=reason, request_key=job.request_key, estimate_usd=job.estimate_usd
    )


def is_free(job: Job) -> bool:
    """Limits and budgets are cost control: a model with no price (the offline renderer) has none."""
    return job.model_entry.prices.free


def reservation_info(r: Reservation) -> dict[str, Any]:
    """A reservation as kept on a claim or a batch run's record (JSON)."""
    return {"id": r.id, "user_id": r.user_id, "amount": r.amount, "day": r.day, "month": r.month}


def reservation_from(info: dict[str, Any]) -> Reservation:
    from ..stores.base import Reservation

    return Reservation(info["id"], info["user_id"], info["amount"], info["day"], info["month"])

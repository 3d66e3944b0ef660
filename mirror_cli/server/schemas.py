"""Request and response bodies of the HTTP API (the shapes the app already speaks, plus extras)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import Progress

UserId = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="The Firebase uid of the user the avatar is for.")


class ProgressMetrics(BaseModel):
    """The user's progress as the app knows it; stored as the user's progress before generating."""

    model_config = ConfigDict(extra="forbid")

    active_days: int = Field(0, ge=0, le=100_000)
    goals_completed: int = Field(0, ge=0, le=100_000)
    major_achievement: str | None = Field(None, max_length=500)
    achievement_areas: list[str] = Field(default_factory=list, max_length=20)
    discovered_traits: list[str] = Field(default_factory=list, max_length=20)

    def to_progress(self) -> Progress:
        return Progress(**self.model_dump())


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = UserId
    evolution_stage: str = Field(
        max_length=40,
        description="A stage (newReflection, firstWeek, twoWeeks, month, quarter, halfYear) or 'current'.",
    )
    progress_metrics: ProgressMetrics | None = Field(
        None, description="When given and different from the stored progress, it replaces it first."
    )
    base_image_url: str | None = Field(
        None,
        max_length=2048,
        description="Accepted for compatibility and not fetched (the server fetches no URLs): the identity "
        "comes from the user's first avatar, or from a photo sent to /avatar/trilogy.",
    )
    regenerate: bool = Field(
        False,
        description="Pay for one more image of a stage the user already has (limited per stage). Without it, a "
        "stage the user already has is answered as it is, whatever the progress metrics say now.",
    )


class EvolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = UserId
    progress_metrics: ProgressMetrics | None = None


Status = Literal["generated", "cached", "ingested", "degraded", "fallback", "blocked"]


class AvatarResponse(BaseModel):
    """One avatar made (or served) for a request."""

    avatar_id: str | None = Field(description="None when a shared fallback picture was served.")
    image_url: str | None = Field(description="A signed, expiring URL of the image; None for a fallback.")
    ithere_message: str = Field(description="I-There's words for this avatar.")
    cached: bool = Field(description="True when no new image was paid for this request.")
    generation_time: float = Field(description="Seconds the server spent on the job.")
    cost: float = Field(description="USD paid for this request (0 when cached).")
    status: Status = Field(description="generated, cached, ingested, or degraded/fallback/blocked (see reason).")
    evolution_stage: str | None = None
    target: str
    reason: str | None = None
    is_fallback: bool = Field(
        False,
        description="True when the user's own image is not shown: the stage's fallback picture answers "
        "(a limit; an outage, and then the avatar is made as soon as the provider answers again, so ask "
        "again later; or image moderation kept the paid image hidden; see reason).",
    )


class EvolveResponse(BaseModel):
    evolved: bool = Field(description="False when no milestone was crossed since the latest avatar.")
    current_stage: str | None = Field(description="The user's latest stage after this call.")
    avatars: list[AvatarResponse]


class TrilogyResponse(BaseModel):
    avatars: list[AvatarResponse]


class JobAccepted(BaseModel):
    job_id: str
    status: Literal["running"] = "running"
    poll_url: str = Field(description="GET it (with the same Authorization) until it answers something else than 202.")
    retry_after_s: int


class StoredAvatar(BaseModel):
    avatar_id: str
    image_url: str
    evolution_stage: str
    target: str
    created_at: str
    cached: bool = Field(False, description="Always false for stored avatars; kept for the app's shape.")
    ithere_message: str
    generation_time: float = Field(0.0, description="Seconds its job took (0 for avatars made before jobs were timed).")


class AvatarPage(BaseModel):
    items: list[StoredAvatar]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; None on the last page.")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]


class Usage(BaseModel):
    model_config = ConfigDict(extra="allow")

    period: str
    start: str
    end: str
    generations: int
    cache_hits: int
    cost_usd: float

    @classmethod
    def of(cls, figures: dict[str, Any]) -> Usage:
        return cls.model_validate(figures)

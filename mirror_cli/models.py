"""Pydantic models shared by the core, the providers and the stores."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .errors import InvalidUserIdError, redact

TIME_ZONE_ERROR = "time_zone"  # the pydantic error type of an unknown time zone
USER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

SkinTone = Literal["pale", "light", "medium", "tan", "brown", "dark"]
HairColor = Literal["black", "darkBrown", "brown", "auburn", "blonde", "platinum", "red", "grey"]
HairStyle = Literal[
    "bigHair",
    "bob",
    "bun",
    "curly",
    "curvy",
    "dreads",
    "dreads01",
    "dreads02",
    "frida",
    "frizzle",
    "fro",
    "froBand",
    "hijab",
    "longButNotTooLong",
    "miaWallace",
    "shaggy",
    "shaggyMullet",
    "shavedSides",
    "shortCurly",
    "shortFlat",
    "shortRound",
    "shortWaved",
    "sides",
    "straight01",
    "straight02",
    "straightAndStrand",
    "theCaesar",
    "theCaesarAndSidePart",
    "turban",
]
Glasses = Literal["none", "prescription01", "prescription02", "round", "wayfarers"]
FacialHair = Literal["none", "beardLight", "beardMedium", "beardMajestic", "moustacheFancy", "moustacheMagnum"]
Voice = Literal["warm", "playful", "wise"]


def validate_user_id(uid: str) -> str:
    """A user id reaches paths, document ids and prompts only after this check."""
    if not isinstance(uid, str) or not USER_ID_RE.fullmatch(uid):
        shown = repr(uid)[:60]
        raise InvalidUserIdError(
            f"Invalid user id {shown}: user ids are 1-128 characters of letters, digits, '_' and '-'.",
            "Pass the id exactly as stored, e.g. --user u1 (no slashes, dots or spaces).",
        )
    return uid


def utcnow() -> datetime:
    return datetime.now(UTC)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrictConfig(BaseModel):
    """A config file's model: unknown fields refused, numbers are numbers (never a string that
    looks like one), and never NaN or infinite."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Appearance(Strict):
    skin: SkinTone = "medium"
    hair_style: HairStyle = "shortFlat"
    hair_color: HairColor = "darkBrown"
    eye_color: str = Field("brown", max_length=20)
    glasses: Glasses = "none"
    facial_hair: FacialHair = "none"
    hoodie_color: str = Field("#E8863A", pattern=r"^#[0-9A-Fa-f]{6}$")
    description: str = Field("", max_length=300)


class Companion(Strict):
    name: str = Field("I-There", max_length=40)
    voice: Voice = "warm"


class Progress(Strict):
    active_days: int = Field(0, ge=0, le=100_000)
    goals_completed: int = Field(0, ge=0, le=100_000)
    major_achievement: str | None = Field(None, max_length=500)
    # at most 20 of them, each at most 100 characters (firestore.rules checks the same, element by element)
    achievement_areas: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)
    discovered_traits: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)
    updated_at: datetime | None = None


ConsentScope = Literal["photo", "generation"]


class ConsentRecord(Strict):
    """What a user agreed to (or withdrew), when, under which terms, and who recorded it."""

    granted: bool
    at: datetime
    terms_version: str = Field(min_length=1, max_length=40)
    recorded_by: str = Field(min_length=1, max_length=80)  # "app" (the user, signed in) or "operator:NAME"


class Persona(Strict):
    id: str
    name: str = Field(max_length=80)
    age: int | None = Field(None, ge=13, le=110)
    appearance: Appearance = Field(default_factory=Appearance)
    personality: list[str] = Field(default_factory=list, max_length=12)
    companion: Companion = Field(default_factory=Companion)
    progress: Progress = Field(default_factory=Progress)
    # An IANA zone name (Europe/Berlin, Asia/Kathmandu): the nightly tick serves the user in the
    # window of their own night. None: the configured default zone (limits.yaml nightly.timezone).
    timezone: str | None = Field(None, max_length=64)
    # Recorded through the API (the user) or 'mirror users consent' (an operator), never by rules.
    consent: dict[ConsentScope, ConsentRecord] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not USER_ID_RE.fullmatch(v):
            raise ValueError("must be 1-128 characters of letters, digits, '_' and '-'")
        return v

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, v: str | None) -> str | None:
        from .nightly import zone_problem

        problem = None if v is None else zone_problem(v)
        if problem:
            # its own error type: an unknown zone is a usage error (exit 2), not a broken file
            raise PydanticCustomError(
                TIME_ZONE_ERROR, "{problem}: use an IANA name such as Europe/Berlin", {"problem": problem}
            )
        return v


class RenderSpec(Strict):
    """The structured description of a picture, for renderers that draw instead of prompting."""

    target: str  # a stage name or a trilogy kind
    stage: str  # the stage whose expression/scene is drawn
    appearance: Appearance
    expression: dict[str, str]
    props: list[str]
    older: bool = False
    seed: str


PHOTO_ROLE = "photo of the person"  # a Reference drawn from the person's photo (the trilogy)


class Reference(Strict):
    role: str  # "identity anchor", "previous stage", "photo"
    sha256: str
    mime: str
    avatar_id: str | None = None


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str
    prompt: str
    size: str = "1024x1024"
    quality: str = "medium"
    output_format: Literal["png", "jpeg", "webp"] = "png"
    references: list[Reference] = Field(default_factory=list)
    reference_bytes: list[bytes] = Field(default_factory=list, exclude=True, repr=False)
    safety_identifier: str
    spec: RenderSpec | None = None
    input_fidelity: str | None = None


class TokenUsage(Strict):
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    output_text_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_text_tokens + self.input_image_tokens + self.output_image_tokens + self.output_text_tokens


class ImageResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: bytes = Field(repr=False)
    mime: str
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    request_id: str | None = None
    latency_s: float = 0.0
    provider: str
    model: str
    rate_headers: dict[str, str] = Field(default_factory=dict, repr=False)


class JobTimings(Strict):
    """Where one job's time went, in seconds, measured at the pipeline's step boundaries.

    queue_wait: from the run's (or request's) start until the job began; provider: the provider
    call with its pacing waits and retries; post_process: decoding, resizing, the quality gate and
    the same-face score; store: writing the image (the record that carries these figures is
    written after them); total: from the job's start until its record was written. None: the job
    did not reach that step (a cache hit has no provider time)."""

    queue_wait_s: float | None = None
    provider_s: float | None = None
    post_process_s: float | None = None
    store_s: float | None = None
    total_s: float | None = None


AvatarStatus = Literal["ok", "flagged", "degraded", "fallback"]
ModerationState = Literal["clean", "flagged", "skipped", "pending"]


class ModerationVerdict(Strict):
    """What image moderation said about a paid image before anyone saw it: ``clean`` or
    ``flagged`` (with the flagged categories), ``skipped`` (a provider with no moderation, or
    turned off; ``detail`` says which) or ``pending`` (the check failed: the image stays
    hidden until a later run checks it)."""

    verdict: ModerationState
    model: str | None = None
    categories: list[str] = Field(default_factory=list)
    checked_at: datetime  # the core's clock
    detail: str | None = None

    @property
    def shown(self) -> bool:
        """May the image be shown? Never when flagged or not checked yet."""
        return self.verdict in ("clean", "skipped")


class AvatarRecord(Strict):
    id: str
    user_id: str
    target: str
    stage: str
    request_key: str
    image_path: str
    thumb_path: str | None = None
    width: int
    height: int
    provider: str
    model: str
    quality: str
    cost_usd: float = 0.0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    request_id: str | None = None
    prompt: str = ""
    references: list[Reference] = Field(default_factory=list)
    message: str = ""
    status: AvatarStatus = "ok"
    reason: str | None = None
    validation: dict[str, Any] = Field(default_factory=dict)
    identity: dict[str, Any] = Field(default_factory=dict)  # same-face score against the anchor, if measured
    # The achievement cues the picture shows (I-There's story compares them with the previous
    # avatar's); None on records made before cues were stored: unknown, never called new.
    cues: list[str] | None = None
    # what decides the avatar's look (planner.look_key); None on records made before it was kept
    look_key: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    timings: JobTimings | None = None  # absent on records stored before jobs were measured
    moderation: ModerationVerdict | None = None  # None on records stored before images were moderated
    # The open (or removing) report that hides this avatar from the user (mirror_cli/reporting.py);
    # None: shown. Hidden avatars are served nowhere: not listed, not a cache hit, not in galleries.
    hidden_by: str | None = None


LedgerKind = Literal[
    "generated",
    "cache_hit",
    "spool_ingest",
    "fallback",
    "failed",
    "blocked",
    "degraded",
    "may_have_billed",
    "alert",  # a threshold crossed (budget, failure rate): its event id makes it fire once
    "skipped",  # a user left out of a run for a reason of their own (a profile that does not validate)
    "moderation",  # a paid image's moderation verdict reached after its paid line was booked (cost 0)
]


class LedgerEvent(Strict):
    ts: datetime  # from the core's clock (mirror_cli/clock.py), never the machine's directly
    user_id: str
    kind: LedgerKind
    target: str = ""
    request_key: str = ""
    avatar_id: str | None = None
    provider: str = ""
    model: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    request_id: str | None = None
    run_id: str | None = None
    detail: str | None = None
    validation_ok: bool | None = None
    identity_distance: float | None = None
    identity_drift: bool | None = None
    timings: JobTimings | None = None
    moderation: ModerationVerdict | None = None  # a paid image's verdict (its paid or moderation line)
    # How many occurrences the line stands for: a server counts its cache hits in memory and
    # books them a batch per line (mirror_cli/server/hits.py); every other line is one.
    count: int = Field(1, ge=1)

    @field_validator("detail")
    @classmethod
    def _no_secrets(cls, v: str | None) -> str | None:
        """Ledger lines outlive every run: a key echoed in an error never lands in one."""
        return redact(v) if v else v


# What a user may say about an avatar they report (the app's choices); "moderation" is the
# system's own reason (an image the moderation check flagged), never the app's.
ReportReason = Literal["offensive", "scary", "not_me", "wrong_look", "other", "moderation"]
APP_REPORT_REASONS: tuple[ReportReason, ...] = ("offensive", "scary", "not_me", "wrong_look", "other")
ReportStatus = Literal["open", "restored", "removed"]
REPORT_STATUSES: tuple[ReportStatus, ...] = ("open", "restored", "removed")
REPORT_NOTE_MAX = 500


class Report(Strict):
    """One avatar reported (by its user through the app, or by the moderation check): the avatar
    is hidden while the report is open, and an operator resolves it (restored: shown again;
    removed: hidden for good, its image deleted, the report kept). It carries copies of what the
    image was made from, so the report can be judged after the image is gone."""

    id: str
    user_id: str
    avatar_id: str
    reason: ReportReason
    note: str = Field("", max_length=REPORT_NOTE_MAX)
    filed_by: str = Field("app", max_length=80)  # "app", "moderation" or "operator:NAME"
    created_at: datetime
    status: ReportStatus = "open"
    target: str = ""
    stage: str = ""
    prompt: str = ""
    model: str = ""
    provider: str = ""
    moderation: dict[str, Any] | None = None  # the verdict the avatar carried (or was flagged with)
    resolved_by: str | None = None
    resolution_note: str = Field("", max_length=REPORT_NOTE_MAX)
    resolved_at: datetime | None = None
    # earlier resolutions of a report the user filed again after a restore (at most 10 kept)
    history: list[dict[str, Any]] = Field(default_factory=list, max_length=10)

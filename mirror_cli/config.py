"""YAML configuration: schemas (pydantic, ``extra="forbid"``) and a loader whose errors name
the file, the line, the field and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, UsageError
from .models import Persona, Voice
from .models import StrictConfig as Strict
from .stages import STAGE_ORDER, TRILOGY_KINDS, StageDef, StageTable, canonical_name
from .telemetry.config import AlertsConfig, TargetsConfig
from .yamlfile import load_yaml_model

if TYPE_CHECKING:
    from .nightly import Window

EyesVariant = Literal[
    "closed",
    "cry",
    "default",
    "eyeRoll",
    "happy",
    "hearts",
    "side",
    "squint",
    "surprised",
    "wink",
    "winkWacky",
    "xDizzy",
    # the offline renderer's own open eyes, in rising order of joy (render/avatar.py)
    "openCurious",
    "openFocused",
    "openBright",
    "openHappy",
    "openWarm",
    "openRadiant",
]
BrowsVariant = Literal[
    "angry",
    "angryNatural",
    "default",
    "defaultNatural",
    "flatNatural",
    "frownNatural",
    "raisedExcited",
    "raisedExcitedNatural",
    "sadConcerned",
    "sadConcernedNatural",
    "unibrowNatural",
    "upDown",
    "upDownNatural",
]
MouthVariant = Literal[
    "concerned",
    "default",
    "disbelief",
    "eating",
    "grimace",
    "sad",
    "screamOpen",
    "serious",
    "smile",
    "tongue",
    "twinkle",
    "vomit",
]
PropName = Literal[
    "laptop",
    "lamp",
    "mug",
    "notebook",
    "organised_desk",
    "sticky_notes",
    "checklist",
    "calendar",
    "plant",
    "big_plant",
    "photo_frame",
    "string_lights",
    "trophy",
    "stars",
    "medal",
    "certificate",
    "books",
    "dumbbell",
    "running_shoes",
    "paint_palette",
    "guitar",
    "code_window",
    "globe",
    "chef_hat",
    "meditation_cushion",
    "hologram",
    "skyline",
    "wall_shelf",
    "hanging_plant",
]
HexColor = str


class Expression(Strict):
    eyes: EyesVariant
    eyebrows: BrowsVariant
    mouth: MouthVariant


class StageLook(Strict):
    expression: str = Field(min_length=3, max_length=300)
    posture: str = Field(min_length=3, max_length=300)
    scene: str = Field(min_length=3, max_length=300)
    props: list[PropName] = Field(default_factory=list)
    face: Expression
    story: str | None = Field(None, max_length=200)  # how I-There describes the scene to the user
    mood: str | None = Field(None, max_length=80)  # how I-There names the expression (never in a prompt)


class TrilogyLook(Strict):
    prompt: str = Field(min_length=3, max_length=600)
    stage: str | None = None  # fixed stage look; None = the user's stage from progress
    older: bool = False
    props: list[PropName] = Field(default_factory=list)
    face: Expression | None = None


class Condition(Strict):
    active_days_at_least: int | None = Field(None, ge=0)
    goals_completed_at_least: int | None = Field(None, ge=0)
    major_achievement: bool | None = None
    trait_count_at_least: int | None = Field(None, ge=0)


class EnvironmentRule(Strict):
    when: Condition
    prompt: str = Field(min_length=3, max_length=300)
    props: list[PropName] = Field(default_factory=list)


class AchievementCue(Strict):
    prompt: str = Field(min_length=3, max_length=200)
    prop: PropName


class Palette(Strict):
    background_top: HexColor = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    background_bottom: HexColor = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    glow: HexColor = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    desk: HexColor = Field(pattern=r"^#[0-9A-Fa-f]{6}$")
    accent: HexColor = Field(pattern=r"^#[0-9A-Fa-f]{6}$")


class GateConfig(Strict):
    enabled: bool = True
    size: int | None = Field(None, ge=16)  # only when the requested size is unknown ('auto')
    min_warm_share: float = Field(0.25, ge=0, le=1)
    min_warmth: float = Field(0.02, ge=-1, le=1)
    max_noise: float = Field(12.0, ge=0)
    min_flat_share: float = Field(0.45, ge=0, le=1)
    max_edge_density: float = Field(0.18, ge=0, le=1)
    min_stddev: float = Field(8.0, ge=0)
    on_fail: Literal["flag", "fallback"] = "flag"
    # Hard failures (undecodable, blank, wrong size) are always retried once. A heuristic failure
    # (palette, texture) of a paid image is stored flagged unless the style opts in to paying again.
    retry_on_heuristic: bool = False


class IdentityConfig(Strict):
    """Same-face score (optional extra [identity]): the distance between the face embeddings of
    a new stage and the user's anchor past which the avatar is flagged "identity drift"."""

    enabled: bool = True
    threshold: float = Field(0.55, gt=0, le=2)


class StyleConfig(Strict):
    name: str
    version: int = Field(ge=1)
    base_prompt: str = Field(min_length=20, max_length=4000)
    identity_prompt: str = Field(min_length=10, max_length=1000)
    reinforce_prompt: str = Field(min_length=10, max_length=1000)
    safe_prompt: str = Field(min_length=10, max_length=1000)
    size: str = "1024x1024"
    quality: Literal["low", "medium", "high", "auto"] = "medium"
    model: str | None = None
    # The world of the story I-There tells (its {world} placeholder); never part of a prompt.
    world: str = Field("Clone Earth", min_length=1, max_length=60)
    palette: Palette
    stages: dict[str, StageLook]
    trilogy: dict[str, TrilogyLook]
    environment: list[EnvironmentRule] = Field(default_factory=list)
    achievement_cues: dict[str, AchievementCue] = Field(default_factory=dict)
    gate: GateConfig = Field(default_factory=GateConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)

    @field_validator("stages")
    @classmethod
    def _all_stages(cls, v: dict[str, StageLook]) -> dict[str, StageLook]:
        missing = [s for s in STAGE_ORDER if s not in v]
        extra = [s for s in v if s not in STAGE_ORDER]
        if missing or extra:
            raise ValueError(f"needs exactly the stages {', '.join(STAGE_ORDER)} (missing {missing}, unknown {extra})")
        return v

    @field_validator("trilogy")
    @classmethod
    def _all_kinds(cls, v: dict[str, TrilogyLook]) -> dict[str, TrilogyLook]:
        if sorted(v) != sorted(TRILOGY_KINDS):
            raise ValueError(f"needs exactly the trilogy kinds {', '.join(TRILOGY_KINDS)}")
        for kind, look in v.items():
            if look.stage is not None and look.stage not in STAGE_ORDER:
                raise ValueError(f"{kind}.stage must be one of {', '.join(STAGE_ORDER)}")
        return v


class StageEntry(Strict):
    name: str
    from_day: int = Field(ge=0)
    label: str


class TrilogyEntry(Strict):
    name: str
    label: str


class StagesConfig(Strict):
    stages: list[StageEntry]
    trilogy: list[TrilogyEntry]

    @model_validator(mode="after")
    def _ordered(self) -> StagesConfig:
        days = [s.from_day for s in self.stages]
        if days != sorted(days) or len(set(days)) != len(days):
            raise ValueError("stages must have strictly increasing from_day values")
        if days and days[0] != 0:
            raise ValueError("the first stage must start at from_day 0")
        return self


class Prices(Strict):
    """USD per 1M tokens: all zero for a free renderer, else every one positive. ``text_out``
    is left out by models that bill no text output."""

    text_in: float = Field(ge=0)
    image_in: float = Field(ge=0)
    image_out: float = Field(ge=0)
    text_out: float | None = Field(None, ge=0)

    @property
    def free(self) -> bool:
        return self.text_in == self.image_in == self.image_out == (self.text_out or 0) == 0


class Capabilities(Strict):
    generate: bool = True
    edits: bool = True
    max_references: int = Field(16, ge=0)
    input_fidelity: list[Literal["low", "high"]] = Field(default_factory=list)
    transparency: bool = False
    batch: bool = False


class ModelEntry(Strict):
    provider: str
    snapshot: str
    prices: Prices
    batch_discount: float = Field(0.5, gt=0, le=1)
    # Output price per image (USD) by quality then size: used to estimate before spending.
    per_image: dict[str, dict[str, Annotated[float, Field(gt=0)]]] = Field(default_factory=dict)
    prompt_tokens_estimate: int = Field(400, ge=0)
    reference_image_tokens: int = Field(0, ge=0)
    sizes: list[str] | Literal["flexible"] = Field(default_factory=lambda: ["1024x1024"])
    qualities: list[str] = Field(default_factory=lambda: ["low", "medium", "high", "auto"])
    capabilities: Capabilities = Field(default_factory=Capabilities)
    shutdown_date: date | None = None
    replacements: list[str] = Field(default_factory=list)
    notes: str | None = None
    # Request timeout (s) by quality for a 1024x1024 image; larger sizes scale with their pixels.
    timeout_s: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {
            "low": 90.0,
            "medium": 150.0,
            "high": 360.0,
            "auto": 360.0,
            "xhigh": 480.0,
            "max": 600.0,
        }
    )

    @model_validator(mode="after")
    def _prices_cannot_overspend(self) -> ModelEntry:
        """A paid model's every price is positive (finite: NaN and infinity are refused above):
        a zero or negative price would let an image past every budget at an estimate of 0."""
        if self.prices.free and self.provider == "local":
            return self
        zero = [k for k, v in self.prices.model_dump().items() if v is not None and v <= 0]
        if zero:
            raise ValueError(f"prices.{zero[0]} must be greater than 0 for a paid model (only 'local' is free)")
        if not self.per_image:
            raise ValueError("per_image must list the price of an image for a paid model")
        return self

    def lifecycle(self, on: date, warn_days: int = 60) -> Literal["active", "retiring", "shut_down"]:
        """Where the model stands on day ``on`` (the core's clock): shut down on or after its
        shutdown date, retiring within ``warn_days`` of it."""
        if self.shutdown_date is None:
            return "active"
        if self.shutdown_date <= on:
            return "shut_down"
        return "retiring" if self.shutdown_date <= on + timedelta(days=warn_days) else "active"

    def request_timeout(self, size: str, quality: str) -> float:
        base = self.timeout_s.get(quality) or max(self.timeout_s.values(), default=600.0)
        w, _, h = size.lower().partition("x")
        try:
            scale = max(1.0, int(w) * int(h) / (1024 * 1024))
        except ValueError:  # 'auto'
            scale = 2.0
        return float(min(3600.0, base * scale))


class ModelsConfig(Strict):
    default: str
    models: dict[str, ModelEntry]

    @model_validator(mode="after")
    def _default_known(self) -> ModelsConfig:
        if self.default not in self.models:
            raise ValueError(f"default {self.default!r} is not one of the models: {', '.join(self.models)}")
        return self


class RateLimit(Strict):
    images_per_minute: float = Field(gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    window_s: float = Field(60.0, gt=0)  # the API's minute; lower only to simulate in tests and bench


class RetryPolicy(Strict):
    max_attempts: int = Field(5, ge=1, le=20)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(60.0, ge=0)
    max_retry_after_s: float = Field(300.0, ge=0)  # a longer Retry-After gives the job up instead of waiting
    # None: by model, size and quality (models.yaml ``timeout_s``); a number overrides every request.
    request_timeout_s: float | None = Field(None, gt=0, le=3600)
    # A request that timed out or lost its answer may have been billed: retried at most this often.
    max_unanswered_retries: int = Field(1, ge=0, le=5)


class PhotoLimits(Strict):
    max_bytes: int = Field(20_000_000, gt=0)
    max_side: int = Field(1536, ge=256)
    max_pixels: int = Field(40_000_000, gt=0)


class ClaimsConfig(Strict):
    """Job claims: before its request a job is claimed in the store, so overlapping runs, shards
    and retried tasks never buy the same image twice."""

    lease_s: float = Field(120.0, ge=1, le=3600)  # renewed every lease_s/3 while in flight
    wait_s: float = Field(900.0, ge=0, le=86400)  # wait this long for another owner's result
    poll_s: float = Field(1.0, gt=0, le=60)
    batch_lease_s: float = Field(26 * 3600.0, ge=60)  # a job in a Batch API batch: until collected


class NightlyConfig(Strict):
    """When the nightly tick serves a user: inside this local window of their own time zone
    (users without one use ``timezone``). An hourly tick always lands in a window of two hours
    or more, even on a spring-forward night."""

    timezone: str = "UTC"
    window_start: str = "02:00"
    window_end: str = "06:00"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from .nightly import zone_problem

        problem = zone_problem(v)
        if problem:
            raise ValueError(f"{problem}: use an IANA name such as Europe/Berlin")
        return v

    @model_validator(mode="after")
    def _window(self) -> NightlyConfig:
        w = self.window  # parses both ends
        if w.length() < timedelta(hours=2):
            raise ValueError(
                f"the window {w.label} is shorter than 2 hours: an hourly tick could miss it "
                "(on a spring-forward night it loses an hour)"
            )
        if w.length() > timedelta(hours=20):
            raise ValueError(
                f"the window {w.label} is longer than 20 hours: one night's window would run into the next "
                "on a fall-back night"
            )
        return self

    @property
    def window(self) -> Window:
        from .nightly import Window, parse_clock

        return Window(parse_clock(self.window_start, "window_start"), parse_clock(self.window_end, "window_end"))


class ModerationConfig(Strict):
    """Screen users' free text with the provider's moderation endpoint before any image request."""

    enabled: bool = False
    model: str = "omni-moderation-latest"


class ImageModerationConfig(Strict):
    """Check every paid image with the provider's moderation endpoint before anyone sees it (on by
    default; a provider without one, such as the offline renderer, skips it and says so)."""

    enabled: bool = True
    model: str = Field("omni-moderation-latest", min_length=1, max_length=80)


class LimitsConfig(Strict):
    per_user_daily: int = Field(3, ge=0)
    system_daily: int = Field(20, ge=0)
    monthly_budget_usd: float = Field(100.0, ge=0)
    max_cost_per_run_usd: float | None = Field(None, ge=0)
    cache_ttl_days: int = Field(30, ge=0)
    # extra paid images of one stage (or trilogy part) a user may ask for with an explicit regenerate
    regenerations_per_target: int = Field(2, ge=0, le=100)
    # reports a user may file a day (POST /api/v1/avatar/{id}/report), counted in the store
    reports_per_user_daily: int = Field(5, ge=0, le=1000)
    concurrency: int = Field(4, ge=1, le=256)
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    photo: PhotoLimits = Field(default_factory=PhotoLimits)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    image_moderation: ImageModerationConfig = Field(default_factory=ImageModerationConfig)
    claims: ClaimsConfig = Field(default_factory=ClaimsConfig)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)  # KPI targets shown by `mirror usage`
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)  # budget and failure-rate warnings
    nightly: NightlyConfig = Field(default_factory=NightlyConfig)  # each user's local nightly window


class VoiceTemplates(Strict):
    intro: dict[str, str]
    evolution: str = Field(min_length=10)
    changes: dict[str, str] = Field(default_factory=dict)
    # said when the user picks an avatar to show: it opens a conversation about it
    selected: str = Field(
        "{name}, you chose your {stage} reflection: {mood}, and {scene}. What do you remember about that time?",
        min_length=10,
    )

    @field_validator("intro")
    @classmethod
    def _intro_targets(cls, v: dict[str, str]) -> dict[str, str]:
        missing = [t for t in (*STAGE_ORDER, *TRILOGY_KINDS) if t not in v]
        if missing:
            raise ValueError(f"intro is missing templates for: {', '.join(missing)}")
        return v


class FallbackVariant(Strict):
    name: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    skin: str
    hair_style: str
    hair_color: str


class FallbacksConfig(Strict):
    variants: list[FallbackVariant] = Field(min_length=1)


class MessagesConfig(Strict):
    voices: dict[Voice, VoiceTemplates]


class ConfigSet:
    """Every config file of one config directory, loaded lazily and validated once."""

    def __init__(self, root: Path, style: str = "daymi") -> None:
        self.root = root
        self.style_name = style
        if not root.is_dir():
            raise ConfigError(
                f"Config directory {root} does not exist.",
                "Pass --config-dir or set MIRROR_CONFIG_DIR to the folder holding stages.yaml.",
            )

    @cached_property
    def style(self) -> StyleConfig:
        path = self.root / "styles" / f"{self.style_name}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in (self.root / "styles").glob("*.yaml"))
            raise ConfigError(f"Unknown style {self.style_name!r}.", f"Use one of: {', '.join(known) or '(none)'}.")
        return load_yaml_model(path, StyleConfig)

    @cached_property
    def stages_config(self) -> StagesConfig:
        return load_yaml_model(self.root / "stages.yaml", StagesConfig)

    @cached_property
    def stages(self) -> StageTable:
        cfg = self.stages_config
        return StageTable([StageDef(s.name, s.from_day, s.label) for s in cfg.stages], [t.name for t in cfg.trilogy])

    def label(self, target: str) -> str:
        cfg = self.stages_config
        labels = {s.name: s.label for s in cfg.stages} | {t.name: t.label for t in cfg.trilogy}
        return labels.get(target, target)

    @cached_property
    def models(self) -> ModelsConfig:
        return load_yaml_model(self.root / "models.yaml", ModelsConfig)

    @cached_property
    def limits(self) -> LimitsConfig:
        return load_yaml_model(self.root / "limits.yaml", LimitsConfig)

    @cached_property
    def messages(self) -> MessagesConfig:
        return load_yaml_model(self.root / "messages.yaml", MessagesConfig)

    @cached_property
    def fallbacks(self) -> FallbacksConfig:
        return load_yaml_model(self.root / "fallbacks.yaml", FallbacksConfig)

    def model(self, name: str) -> ModelEntry:
        try:
            return self.models.models[name]
        except KeyError:
            raise ConfigError(
                f"Unknown model {name!r}.",
                f"Use one of: {', '.join(self.models.models)} (models.yaml in {self.root}).",
            ) from None

    def validate_all(self) -> None:
        """Load every file now, so a bad config fails before any work starts."""
        _ = (self.style, self.stages, self.models, self.limits, self.messages)
        for stage in self.style.stages:
            canonical_name(stage, self.stages.names)


def load_personas(paths: Sequence[Path], *, user_files: bool = True) -> dict[str, Persona]:
    """Persona YAML files, keyed by id; ids must be unique. In a user's own files an unsafe id or
    a bad number is their input (UsageError, exit 2); a file that cannot be read stays a ConfigError."""
    out: dict[str, Persona] = {}
    for path in paths:
        try:
            persona = load_yaml_model(path, Persona)
        except ConfigError as exc:
            if user_files and isinstance(exc.__cause__, ValidationError):
                raise UsageError(exc.message, exc.hint) from exc
            raise
        if persona.id in out:
            raise (UsageError if user_files else ConfigError)(
                f"{path}: persona id {persona.id!r} is also used by another file.",
                "Give every persona a unique id.",
            )
        out[persona.id] = persona
    return out


def example_personas() -> dict[str, Persona]:
    """The example personas shipped with the package (demo data: imported only on request)."""
    from .resources import examples_dir

    return load_personas(sorted(examples_dir().glob("*.yaml")), user_files=False)

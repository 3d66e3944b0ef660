"""Settings, highest precedence first:

1. command-line flags;
2. ``MIRROR_*`` environment variables (``MIRROR_DATA_DIR``, ``MIRROR_STORE``, ...);
3. ``mirror.yaml`` (the file named by ``MIRROR_SETTINGS``, else ``./mirror.yaml``); relative
   paths in it are relative to the file;
4. the user's project folder (the folder of that ``mirror.yaml``, else the current folder):
   its ``configs/`` when present, its ``fallback_assets/`` (where ``seed-fallbacks`` writes and
   which the fallback lookup prefers), its ``mirror-data/``;
5. the defaults shipped inside the package (``mirror_cli/data``), which are never written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from .errors import ConfigError
from .models import Strict
from .resources import default_config_dir

SETTINGS_FILE_NAME = "mirror.yaml"
MAX_SETTINGS_BYTES = 64 * 1024
PATH_FIELDS = ("config_dir", "data_dir", "fallback_dir", "secrets_file", "firebase_credentials")


class Settings(Strict):
    config_dir: Path = Field(default_factory=default_config_dir)
    data_dir: Path = Path("mirror-data")
    store: str = "local"
    provider: str = "local"
    style: str = "daymi"
    model: str | None = None  # None: the style's model, then models.yaml's default (or 'local')
    quality: Literal["low", "medium", "high", "auto", "xhigh", "max"] | None = None
    size: str | None = None
    base_url: str | None = None
    secrets_file: Path | None = None
    concurrency: int | None = Field(None, ge=1, le=256)
    max_cost: float | None = Field(None, ge=0)
    # The user's fallback set: seed-fallbacks writes here; lookups try it before the shipped set.
    fallback_dir: Path = Path("fallback_assets")
    # Act as of this ISO-8601 instant (backfills, replays, tests); None: the machine's clock.
    now: str | None = None
    # Firebase store
    firebase_project: str | None = None
    firebase_bucket: str | None = None
    firebase_credentials: Path | None = None  # key file; otherwise Application Default Credentials
    store_timeout_s: float = Field(30.0, gt=0, le=600)
    # A store call may take store_timeout_s plus this retry budget; a store stalled longer stops
    # the run (exit 8, resumable) within that time.
    store_retry_s: float = Field(5.0, ge=0, le=600)
    signed_url_ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # `mirror serve`
    environment: Literal["development", "production"] = "development"  # production refuses emulators
    queue: str = "local"  # the job queue of `mirror worker` and `evolve --due --enqueue` (local: SQLite)
    queue_max_attempts: int = Field(5, ge=5, le=100)  # deliveries before a job is dead-lettered
    pubsub_topic: str = Field("mirror-jobs", pattern=r"^[A-Za-z][A-Za-z0-9._~+%-]{2,200}$")  # queue: pubsub
    serve_wait_s: float = Field(20.0, ge=0, le=600)  # slower generations answer 202, published to the queue
    # run queued jobs inside `mirror serve` too (auto: with the embedded local queue only; on Cloud
    # Run, workers or the push endpoint run them)
    serve_worker: Literal["auto", "on", "off"] = "auto"
    # POST /api/v1/queue/push (Pub/Sub push): the OIDC audience its tokens carry, and the service
    # account that signs them; the endpoint refuses every push while either is unset
    push_audience: str | None = Field(None, max_length=2048)
    push_account: str | None = Field(None, max_length=320)
    serve_ip_rate_per_minute: int = Field(120, ge=1, le=1_000_000)  # unauthenticated requests per IP per minute
    serve_cors_origins: str = ""  # comma-separated origins allowed by CORS; none by default
    serve_rate_per_minute: int = Field(60, ge=1, le=1_000_000)  # requests per signed-in user per minute
    serve_max_body_bytes: int = Field(65_536, ge=1024, le=10_000_000)  # JSON bodies (uploads: the photo limit)
    serve_shutdown_grace_s: float = Field(300.0, ge=0, le=3600)  # SIGTERM: how long in-flight jobs may finish
    serve_hits_flush_s: float = Field(60.0, ge=0.05, le=3600)  # cache hits counted in memory, booked this often
    # Accept the Firebase Auth emulator's unsigned tokens when FIREBASE_AUTH_EMULATOR_HOST names a
    # loopback host: tests and local development only, refused with environment: production.
    auth_emulator: bool = False
    auth_check_revoked: bool = True  # also ask Firebase Auth whether a token was revoked (cached a minute)
    serve_metrics: bool = True  # /metrics and the request metrics (traces follow the OTLP settings)
    metrics_token: str | None = Field(None, min_length=16, repr=False)  # /metrics asks for it as a Bearer token


ENV_PREFIX = "MIRROR_"
SETTINGS_FILE_ENV = "MIRROR_SETTINGS"


def _from_file(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    candidate = path or (Path(os.environ[SETTINGS_FILE_ENV]) if os.environ.get(SETTINGS_FILE_ENV) else None)
    if candidate is None:
        candidate = Path(SETTINGS_FILE_NAME)
        if not candidate.is_file():
            return {}, None
    try:
        with candidate.open("rb") as fh:
            raw = fh.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"Settings file {candidate} does not exist.", "Check MIRROR_SETTINGS, or create one with 'mirror init'."
        ) from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the settings file {candidate}: {exc.strerror}.", "Check its path.") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ConfigError(
            f"Settings file {candidate} is larger than {MAX_SETTINGS_BYTES // 1024} KiB.",
            "It holds a few 'key: value' lines; check that MIRROR_SETTINGS names the right file.",
        )
    try:
        data = yaml.safe_load(raw.decode("utf-8", errors="replace")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{candidate}: malformed YAML ({exc}).", "Fix the YAML syntax.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{candidate}: expected 'key: value' pairs.", "See README, section Settings.")
    base = candidate.parent
    for key in PATH_FIELDS:
        value = data.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[key] = base / value
        elif isinstance(value, str) and value:
            data[key] = Path(value).expanduser()
    return data, candidate


def _from_project(project: Path) -> dict[str, Any]:
    """The user's project folder: its configs when present, its fallback set and data folder."""
    out: dict[str, Any] = {"fallback_dir": project / "fallback_assets", "data_dir": project / "mirror-data"}
    if (project / "configs" / "stages.yaml").is_file():
        out["config_dir"] = project / "configs"
    return out


def _from_env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in os.environ and os.environ[key] != "":
            out[name] = os.environ[key]
    # MIRROR_OPENAI_BASE_URL: the name the README used first, honoured as a fallback.
    if "base_url" not in out and os.environ.get("MIRROR_OPENAI_BASE_URL"):
        out["base_url"] = os.environ["MIRROR_OPENAI_BASE_URL"]
    return out


def project_dir(settings_file: Path | None = None) -> Path:
    """The user's project folder: the folder of the settings file in use, else the current folder."""
    _, path = _from_file(settings_file)
    return path.parent if path is not None else Path()


def load_settings(flags: dict[str, Any] | None = None, settings_file: Path | None = None) -> Settings:
    file_values, file_path = _from_file(settings_file)
    project = file_path.parent if file_path is not None else Path()
    env = _from_env()
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    merged: dict[str, Any] = {}
    merged.update(_from_project(project))
    merged.update(file_values)
    merged.update(env)
    merged.update(given)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        source = "flag" if field in given else ("environment" if field in env else str(file_path))
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(
            f"Invalid setting {field!r} (from {source}): {msg}.",
            f"Allowed settings: {', '.join(Settings.model_fields)}.",
        ) from exc

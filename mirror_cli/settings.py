"""Settings: flags > environment (MIRROR_*) > mirror.yaml > defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from .errors import ConfigError
from .models import Strict

PACKAGE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class Settings(Strict):
    config_dir: Path = Field(
        default_factory=lambda: Path("configs") if Path("configs/stages.yaml").exists() else PACKAGE_CONFIGS
    )
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
    fallback_dir: Path = Field(
        default_factory=lambda: (
            Path("fallback_assets") if Path("fallback_assets").exists() else PACKAGE_CONFIGS.parent / "fallback_assets"
        )
    )
    # Firebase store
    firebase_project: str | None = None
    firebase_bucket: str | None = None
    firebase_credentials: Path | None = None  # service-account JSON; default GOOGLE_APPLICATION_CREDENTIALS
    store_timeout_s: float = Field(30.0, gt=0, le=600)
    signed_url_ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    # `mirror serve`
    environment: Literal["development", "production"] = "development"  # production refuses emulators
    serve_wait_s: float = Field(20.0, ge=0, le=600)  # slower generations answer 202 and a job URL
    serve_cors_origins: str = ""  # comma-separated origins allowed by CORS; none by default
    serve_rate_per_minute: int = Field(60, ge=1, le=1_000_000)  # requests per signed-in user per minute
    serve_max_body_bytes: int = Field(65_536, ge=1024, le=10_000_000)  # JSON bodies (uploads: the photo limit)
    serve_shutdown_grace_s: float = Field(300.0, ge=0, le=3600)  # SIGTERM: how long in-flight jobs may finish
    auth_check_revoked: bool = True  # also ask Firebase Auth whether a token was revoked (cached a minute)


ENV_PREFIX = "MIRROR_"
SETTINGS_FILE_ENV = "MIRROR_SETTINGS"


def _from_file(path: Path | None) -> tuple[dict[str, Any], Path | None]:
    candidate = path or (Path(os.environ[SETTINGS_FILE_ENV]) if SETTINGS_FILE_ENV in os.environ else None)
    if candidate is None:
        candidate = Path("mirror.yaml")
        if not candidate.exists():
            return {}, None
    try:
        data = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"Settings file {candidate} does not exist.", "Check MIRROR_SETTINGS.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{candidate}: malformed YAML ({exc}).", "Fix the YAML syntax.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{candidate}: expected 'key: value' pairs.", "See README, section Settings.")
    return data, candidate


def _from_env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in os.environ and os.environ[key] != "":
            out[name] = os.environ[key]
    # Conventional names of the OpenAI SDK and Firebase, honoured as fallbacks.
    if "base_url" not in out and os.environ.get("MIRROR_OPENAI_BASE_URL"):
        out["base_url"] = os.environ["MIRROR_OPENAI_BASE_URL"]
    return out


def load_settings(flags: dict[str, Any] | None = None, settings_file: Path | None = None) -> Settings:
    file_values, file_path = _from_file(settings_file)
    merged: dict[str, Any] = {}
    merged.update(file_values)
    merged.update(_from_env())
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        source = "flag" if field in (flags or {}) else ("environment" if field in _from_env() else str(file_path))
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(
            f"Invalid setting {field!r} (from {source}): {msg}.",
            f"Allowed settings: {', '.join(Settings.model_fields)}.",
        ) from exc

"""The OpenAI provider: GPT Image models through the official SDK (AsyncOpenAI).

- First avatar of a user: ``images.generate``; every later one: ``images.edit`` with the identity
  anchor and the previous stage as references, each uploaded with an explicit image MIME type.
- ``model``, ``size``, ``quality`` and ``output_format`` are always sent; ``input_fidelity`` only to
  models that accept it; a hashed user id as ``safety_identifier``.
- The SDK's retries are off (``max_retries=0``): failures are classified here and retried (or not)
  by ``pacing.call_with_retries``.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, read_text, redact, register_secret
from ..models import ImageRequest, ImageResult, TokenUsage
from ..pacing import ProviderFailure, parse_retry_after, parse_try_again
from .base import Capabilities, ProviderContext

if TYPE_CHECKING:
    import openai

EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
STOP_CODES = {"insufficient_quota", "billing_hard_limit_reached", "model_not_found", "invalid_api_key"}


SECRETS_MAX_BYTES = 64 * 1024


def read_api_key(secrets_file: Path | None) -> str | None:
    """OPENAI_API_KEY from the environment, else from a secrets file of KEY=value lines (a regular
    file of at most 64 KiB). The key's value is registered for redaction, whatever its shape."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return register_secret(key.strip())
    if secrets_file is None:
        return None
    text = read_text(
        secrets_file,
        SECRETS_MAX_BYTES,
        what="secrets file",
        hint="Pass a small text file of KEY=value lines with --secrets-file / MIRROR_SECRETS_FILE.",
        text_hint="Write it as KEY=value lines.",
        error=ConfigError,
    )
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in ("OPENAI_API_KEY", "openai_api_key"):
            return register_secret(value.strip().strip("'\""))
    return None


def classify(exc: Exception) -> ProviderFailure:
    """Map an SDK exception onto the retry policy (see README, 'What each error means')."""
    import openai

    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    request_id = getattr(exc, "request_id", None)
    message = redact(getattr(exc, "message", None) or str(exc))
    headers: dict[str, str] = {}
    response = getattr(exc, "response", None)
    if response is not None:
        headers = dict(response.headers)
        request_id = request_id or headers.get("x-request-id")
    retry_after = parse_retry_after(headers) or parse_try_again(message)

    def fail(kind: Any) -> ProviderFailure:
        return ProviderFailure(kind, message, status=status, code=code, retry_after=retry_after, request_id=request_id)

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return ProviderFailure("transient", f"connection problem: {message}", code=_unanswered_code(exc))
    if isinstance(exc, openai.RateLimitError):
        return fail("stop" if code in STOP_CODES else "transient")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return fail("stop")
    if isinstance(exc, openai.NotFoundError):
        return fail("stop" if code in STOP_CODES or "model" in message.lower() else "bad_request")
    if isinstance(exc, openai.BadRequestError):
        if code == "moderation_blocked":
            return fail("moderation")
        if code in STOP_CODES:
            return fail("stop")
        return fail("bad_request")
    if isinstance(exc, openai.InternalServerError) or (status is not None and status >= 500):
        return fail("transient")
    if status in (408, 409):
        return fail("transient")
    if isinstance(exc, openai.APIStatusError):
        return fail("bad_request")
    if isinstance(exc, openai.APIError):  # e.g. a server error event mid-stream
        return ProviderFailure("transient", message, code=code)
    raise exc


def _unanswered_code(exc: Exception) -> str:
    """'connection' when the request never left (connect failure, no free connection): nothing
    was billed. 'timeout' / 'dropped' when it was sent and its answer never arrived: it may
    have been billed."""
    cause = exc.__cause__ or exc.__context__
    name = type(cause).__name__ if cause is not None else ""
    if name in ("ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol", "ProxyError"):
        return "connection"
    import openai

    return "timeout" if isinstance(exc, openai.APITimeoutError) or "Timeout" in name else "dropped"


def request_body(request: ImageRequest) -> dict[str, Any]:
    """The parameters every image request sends explicitly (never the API's defaults)."""
    return {
        "model": request.model,
        "prompt": request.prompt,
        "size": request.size,
        "quality": request.quality,
        "output_format": request.output_format,
        "n": 1,
        "safety_identifier": request.safety_identifier,
    }


def usage_of(resp: Any) -> TokenUsage:
    u = getattr(resp, "usage", None)
    if u is None:
        return TokenUsage()
    itd = getattr(u, "input_tokens_details", None)
    otd = getattr(u, "output_tokens_details", None)
    text_in = getattr(itd, "text_tokens", None)
    image_in = getattr(itd, "image_tokens", None)
    if text_in is None and image_in is None:
        text_in, image_in = u.input_tokens or 0, 0
    out_img = getattr(otd, "image_tokens", None) if otd is not None else None
    out_txt = getattr(otd, "text_tokens", None) if otd is not None else None
    return TokenUsage(
        input_text_tokens=text_in or 0,
        input_image_tokens=image_in or 0,
        output_image_tokens=out_img if out_img is not None else (u.output_tokens or 0),
        output_text_tokens=out_txt or 0,
    )


def _flagged_categories(results: Any) -> list[str]:
    """The categories any moderation result flagged ("flagged" when it names none)."""
    flagged: list[str] = []
    for result in results:
        if result.flagged:
            cats = result.categories.model_dump(by_alias=True)
            flagged.extend(sorted(k for k, v in cats.items() if v and k not in flagged))
    return flagged or (["flagged"] if any(r.flagged for r in results) else [])


def _no_key() -> ConfigError:
    return ConfigError(
        "No OpenAI API key: OPENAI_API_KEY is not set and no secrets file holds one.",
        "export OPENAI_API_KEY=... (or --secrets-file FILE with OPENAI_API_KEY=...), or use "
        "--provider local for offline avatars.",
    )


class OpenAIProvider:
    name = "openai"
    capabilities = Capabilities(edits=True, max_references=16, sizes=None, batch=True, uses_references=True)

    def __init__(self, ctx: ProviderContext) -> None:
        self.settings = ctx.settings
        self.configs = ctx.configs
        import importlib.util

        if importlib.util.find_spec("openai") is None:
            raise ConfigError(
                "The openai provider needs the openai package, which is not installed.",
                "openai is a dependency of mirror: reinstall it (pip install --force-reinstall mirror-realm-avatars).",
            )
        key = read_api_key(ctx.settings.secrets_file)
        # A dry run only estimates: it needs prices, not a key.
        if not key and not ctx.extra.get("estimate_only"):
            raise _no_key()
        self._key = key or ""
        self._client: openai.AsyncOpenAI | None = None
        self.last_headers: dict[str, str] = {}

    @property
    def renderer_version(self) -> str:
        return "openai-images-v1"

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            # A provider opened for a dry run (no key needed) may later be asked to send, e.g. on
            # a long-lived server core: refuse with the same clear error, before any request.
            if not self._key:
                raise _no_key()
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key,
                base_url=self.settings.base_url or None,
                max_retries=0,
                timeout=self.configs.limits.retry.request_timeout_s or 600.0,
            )
        return self._client

    def timeout_for(self, request: ImageRequest) -> float:
        """The request timeout: limits.retry.request_timeout_s when set, else by model, size and
        quality (models.yaml ``timeout_s``; a high-quality gpt-image-2 can take minutes)."""
        fixed = self.configs.limits.retry.request_timeout_s
        if fixed:
            return fixed
        for entry in self.configs.models.models.values():
            if request.model in (entry.snapshot,):
                return entry.request_timeout(request.size, request.quality)
        return 600.0

    async def generate(self, request: ImageRequest) -> ImageResult:
        common: dict[str, Any] = {**request_body(request), "timeout": self.timeout_for(request)}
        client = self.client  # outside the try: a missing key is a configuration error, nothing was sent
        start = time.perf_counter()
        try:
            if request.references:
                files = [
                    (f"reference-{i + 1}.{EXT.get(r.mime, 'png')}", data, r.mime)
                    for i, (r, data) in enumerate(zip(request.references, request.reference_bytes, strict=True))
                ]
                if request.input_fidelity:
                    common["input_fidelity"] = request.input_fidelity
                raw = await client.images.with_raw_response.edit(image=files, **common)
            else:
                raw = await client.images.with_raw_response.generate(**common)
            resp = raw.parse()
        except Exception as exc:  # classified: transient / stop / moderation / bad_request
            raise classify(exc) from exc
        latency = time.perf_counter() - start
        self.last_headers = {k.lower(): v for k, v in raw.headers.items()}
        if not resp.data or not resp.data[0].b64_json:
            raise ProviderFailure(
                "bad_request",
                "The response held no image (no data[0].b64_json).",
                request_id=self.last_headers.get("x-request-id"),
            )
        try:
            data = base64.b64decode(resp.data[0].b64_json, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderFailure("transient", "The response's image was not valid base64.") from exc
        fmt = resp.output_format or request.output_format
        return ImageResult(
            data=data,
            mime={"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt, "image/png"),
            usage=usage_of(resp),
            request_id=self.last_headers.get("x-request-id") or getattr(resp, "_request_id", None),
            latency_s=latency,
            provider=self.name,
            model=request.model,
            rate_headers=self.last_headers,
        )

    async def moderate(self, texts: list[str], model: str) -> list[str]:
        """Categories flagged by the moderation endpoint for any of ``texts`` (empty: all clear)."""
        try:
            resp = await self.client.moderations.create(model=model, input=texts)
        except Exception as exc:
            raise classify(exc) from exc
        return _flagged_categories(resp.results)

    async def moderate_image(self, data: bytes, mime: str, model: str) -> list[str]:
        """Categories the moderation model flagged one finished image for (empty: clean); the
        image goes as a base64 data URL (the endpoint is free of charge)."""
        from openai.types import ModerationImageURLInputParam

        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        image: ModerationImageURLInputParam = {"type": "image_url", "image_url": {"url": url}}
        try:
            resp = await self.client.moderations.create(
                model=model,
                input=[image],
                timeout=min(60.0, self.configs.limits.retry.request_timeout_s or 60.0),
            )
        except Exception as exc:
            raise classify(exc) from exc
        return _flagged_categories(resp.results)

    async def check(self, model: str) -> list[dict[str, str | None]]:
        """`mirror doctor`: is the key accepted, is the model served, when does it shut down?"""
        entry = self.configs.model(model)
        checks: list[dict[str, str | None]] = [
            {
                "check": "api key",
                "status": "ok",
                "detail": f"set ({len(self._key)} characters, not shown)",
                "fix": None,
            }
        ]
        try:
            info = await self.client.models.retrieve(entry.snapshot)
        except Exception as exc:
            failure = classify(exc)
            fix = {
                401: "Set a valid OPENAI_API_KEY.",
                403: "Verify your organisation for GPT Image models.",
                404: "Pick a model your organisation can use (--model).",
            }.get(failure.status or 0, "Check --base-url and the network.")
            checks.append(
                {
                    "check": "model availability",
                    "status": "fail",
                    "detail": f"{entry.snapshot}: {failure.status or ''} {failure.message}",
                    "fix": fix,
                }
            )
            return checks
        shutdown = getattr(info, "shutdown_date", None)
        status = "warn" if shutdown else "ok"
        checks.append(
            {
                "check": "model availability",
                "status": status,
                "detail": f"{info.id} available" + (f"; shutdown_date {shutdown}" if shutdown else ""),
                "fix": f"Plan the move to {', '.join(entry.replacements) or 'a current model'}" if shutdown else None,
            }
        )
        return checks

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

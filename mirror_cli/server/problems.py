"""RFC 7807 problem details: the HTTP edge of the core's user-worded errors.

The CLI turns a ``MirrorError`` into an exit code and prints its message and fix; the server turns
the same error into a status code and a JSON body with the same words (``detail`` is the message,
``fix`` the hint). Nothing else reaches a client: no exception text, no secrets.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from ..errors import (
    ConfigError,
    ConsentError,
    InvalidUserIdError,
    MirrorError,
    NotFoundError,
    PhotoError,
    ProviderError,
    ReportLimitError,
    RunStoppedError,
    StoreError,
    UnknownStageError,
    UnknownUserError,
    UsageError,
    redact,
)

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """A problem detail (RFC 7807) with the CLI's wording: ``detail`` says the cause, ``fix`` the remedy."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong, in the same words as the CLI.")
    fix: str | None = Field(None, description="How to fix it, in the same words as the CLI.")
    retry_after_s: int | None = Field(None, description="For 429 and 503: seconds to wait (also in Retry-After).")


class ProblemError(Exception):
    """Raised by the web layer for a problem that is not a core error (auth, limits, sizes)."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        fix: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem = Problem(
            type=f"urn:mirror:problem:{slug}",
            title=title,
            status=status,
            detail=redact(detail),
            fix=redact(fix) if fix else None,
            retry_after_s=retry_after_s,
        )

    def headers(self) -> dict[str, str]:
        return problem_headers(self.problem)


def problem_headers(problem: Problem) -> dict[str, str]:
    headers = {}
    if problem.retry_after_s is not None:
        headers["Retry-After"] = str(problem.retry_after_s)
    if problem.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="mirror"'
    return headers


# The most specific class first.
_STATUS: list[tuple[type[MirrorError], int, str]] = [
    (UnknownUserError, 404, "Unknown user"),
    (UnknownStageError, 422, "Unknown stage"),
    (NotFoundError, 404, "Not found"),
    (InvalidUserIdError, 422, "Invalid user id"),
    (PhotoError, 422, "Photo refused"),
    (ConsentError, 403, "Consent required"),
    (ReportLimitError, 429, "Too many reports"),
    (UsageError, 400, "Bad request"),
    (RunStoppedError, 503, "Generation stopped"),
    (StoreError, 503, "Store unavailable"),
    (ProviderError, 502, "Image provider failed"),
    (ConfigError, 500, "Server misconfigured"),
]

_SERVER_HINTS: dict[type[MirrorError], str | None] = {
    # The CLI lists known users in this hint; a client must not see other users' ids.
    UnknownUserError: "Ask the operator to import this user ('mirror users import').",
}


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name.removesuffix("Error")).lower()


def from_error(err: MirrorError) -> ProblemError:
    for cls, status, title in _STATUS:
        if isinstance(err, cls):
            hint = _SERVER_HINTS.get(cls, err.hint)
            retry = err.retry_after_s if isinstance(err, ReportLimitError) else 30 if status == 503 else None
            return ProblemError(status, _slug(type(err).__name__), title, err.message, hint, retry)
    return ProblemError(500, "internal", "Internal error", err.message, err.hint)


def internal() -> ProblemError:
    return ProblemError(
        500,
        "internal",
        "Internal error",
        "The server failed unexpectedly; nothing was charged twice.",
        "Try again; if it persists, tell the operator the time of the request.",
    )


def openapi_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses a route documents (the schema is patched to problem+json in app.py)."""
    return {s: {"model": Problem, "description": _DESCRIPTIONS.get(s, "Problem")} for s in statuses}


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, malformed, expired or revoked ID token",
    403: "The signed-in user may not act on this user id",
    404: "Not found",
    409: "The signed-in user has no profile yet: create it with PUT /api/v1/users/{id}",
    413: "Request body or upload too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "A limit was reached: see Retry-After",
    500: "Server misconfigured or a bug",
    502: "The image provider failed",
    503: "Store or provider unavailable, or generation stopped: see Retry-After",
}

"""User-worded errors and the exit codes the CLI turns them into.

Every error raised by the core says what went wrong and how to fix it. The CLI is the only
place that catches them (``cli/app.py``) and maps them to an exit status.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected failure (a bug): run again with --debug
    USAGE = 2  # bad flags or arguments (Typer/Click use 2 as well)
    CONFIG = 3  # invalid YAML / settings
    NOT_FOUND = 4  # unknown user, stage, run, file
    PROVIDER = 5  # the image provider refused or failed
    PARTIAL = 6  # the run finished, but some jobs failed or were degraded
    STOPPED = 7  # the run was stopped by quota, budget, billing or credentials
    STORE = 8  # the store cannot be read or written
    INTERRUPTED = 130


class MirrorError(Exception):
    """Base class: ``message`` says the cause, ``hint`` says the fix."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(redact(message))
        self.message = redact(message)
        self.hint = redact(hint) if hint else None

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"

    def to_dict(self) -> dict[str, str | int | None]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }


class UsageError(MirrorError):
    exit_code = ExitCode.USAGE


class ConfigError(MirrorError):
    exit_code = ExitCode.CONFIG


class NotFoundError(MirrorError):
    exit_code = ExitCode.NOT_FOUND


class UnknownUserError(NotFoundError):
    pass


class UnknownStageError(NotFoundError):
    pass


class InvalidUserIdError(UsageError):
    pass


class PhotoError(UsageError):
    pass


class ProviderError(MirrorError):
    exit_code = ExitCode.PROVIDER


class RunStoppedError(MirrorError):
    """The whole run must stop now: quota, billing, credentials, a retired model."""

    exit_code = ExitCode.STOPPED


class StoreError(MirrorError):
    exit_code = ExitCode.STORE


_SECRET_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.]{8,}"),
    re.compile(r'(?i)("private_key"\s*:\s*")[^"]+'),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
]


def redact(text: str) -> str:
    """Remove anything that looks like a secret from text meant for a human or a log."""
    out = text
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            out = pattern.sub(lambda m: m.group(1) + "[redacted]", out)
        else:
            out = pattern.sub("[redacted]", out)
    return out

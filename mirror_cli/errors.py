"""User-worded errors and the exit codes the CLI turns them into.

Every error raised by the core says what went wrong and how to fix it. The CLI is the only
place that catches them (``cli/app.py``) and maps them to an exit status.
"""

from __future__ import annotations

import os
import re
import stat
from enum import IntEnum
from pathlib import Path


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
    OVER_THRESHOLD = 9  # the run finished, but crossed a budget or failure-rate threshold (see "alerts")
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


class UserErasedError(NotFoundError):
    """A write for a user who was erased (mirror_cli/erasure.py): refused, so a late job, batch
    result or request never re-creates them."""


class InvalidUserIdError(UsageError):
    pass


class PhotoError(UsageError):
    pass


class ConsentError(UsageError):
    """A use of the user's data (their photo) that they have not agreed to: refused before anything
    is uploaded or paid."""


class UnknownReportError(UsageError):
    """A report id the store does not have (``mirror reports show/resolve``)."""


class ReportLimitError(UsageError):
    """The user filed their reports for the day: answered 429 with Retry-After by the API."""

    def __init__(self, message: str, hint: str | None, retry_after_s: int) -> None:
        super().__init__(message, hint)
        self.retry_after_s = retry_after_s


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


_SECRETS: set[str] = set()
MIN_SECRET_LEN = 8  # shorter values would redact ordinary words


def register_secret(value: str) -> str:
    """Redact this exact value (a configured key of any shape) from every output from now on,
    also in its JSON-escaped form."""
    if value and len(value) >= MIN_SECRET_LEN:
        import json

        _SECRETS.add(value)
        _SECRETS.add(json.dumps(value)[1:-1])
    return value


def redact(text: str) -> str:
    """Remove the configured secrets, and anything that looks like a secret, from text meant for
    a human, a report or a ledger."""
    out = text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            out = pattern.sub(lambda m: m.group(1) + "[redacted]", out)
        else:
            out = pattern.sub("[redacted]", out)
    return out


def read_bounded(
    path: Path,
    limit: int,
    *,
    what: str,
    hint: str,
    error: type[MirrorError] = UsageError,
) -> bytes:
    """Read a user-given file safely: refuse anything but a regular file (a device, FIFO or
    directory) before reading, never block on a FIFO, and never read more than ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"The {what} {path} does not exist.", hint) from None
    except IsADirectoryError:
        raise error(f"The {what} {path} is a directory, not a file.", hint) from None
    except OSError as exc:
        raise error(f"Cannot open the {what} {path}: {exc.strerror}.", hint) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(info.st_mode)
                else "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a socket or special file"
            )
            raise error(f"The {what} {path} is {kind}, not a regular file.", hint)
        if info.st_size > limit:
            raise error(f"The {what} {path} is {info.st_size:,} bytes; the limit is {limit:,}.", hint)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise error(f"The {what} {path} is larger than the limit of {limit:,} bytes.", hint)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"Cannot read the {what} {path}: {exc.strerror}.", hint) from None
    finally:
        os.close(fd)


def read_text(path: Path, limit: int, *, what: str, hint: str, text_hint: str, error: type[MirrorError]) -> str:
    """``read_bounded``, then UTF-8 text: a binary file is refused naming the first bad byte's offset
    (never its value: the file may hold secrets), with ``text_hint`` as the fix."""
    raw = read_bounded(path, limit, what=what, hint=hint, error=error)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"The {what} {path} is not UTF-8 text (byte {exc.start}); is it a binary file?"
        raise error(message, text_hint) from None


def as_store_error(exc: BaseException) -> StoreError | None:
    """A full disk (or an I/O failure writing the store) as a user-worded StoreError (exit 8);
    None for anything else."""
    import errno
    import sqlite3

    full = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, OSError) and exc.errno in full:
        return StoreError(
            f"The disk is full: {exc.strerror} ({exc.filename or 'a data file'}).",
            "Free some space (or point --data-dir at a larger disk), then run the same command again.",
        )
    if isinstance(exc, sqlite3.OperationalError) and any(
        w in str(exc) for w in ("disk is full", "disk I/O error", "readonly database", "unable to open")
    ):
        return StoreError(
            f"The local store cannot be written: {exc} (is the disk full?).",
            "Free some space (or point --data-dir at a larger disk), then run the same command again.",
        )
    return None

"""Approval states: a person's decision (draft, approved, rejected; who, when, a note) on a fallback
asset or a flagged avatar, recorded in the store against the hash of the image decided on.

A decision applies to that image only: when a re-render changes the image, its effective state is
``draft`` again (the last approved hash is kept so the review page can show it side by side); when
a re-render gives the same bytes, the approval stands. The shipped fallback set carries its
approval in its manifest."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fallbacks import FallbackEntry
from ..stores.base import REVIEW_STATES, Review, ReviewKind, ReviewState, ReviewStore

NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
MAX_NOTE = 500
MAX_REVIEWER = 80
APPROVAL_TTL_S = 30.0  # a long-lived server sees a designer's decision within this


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or ".." in value:
        raise UsageError(
            f"Invalid {what} {str(value)[:60]!r}.",
            f"A {what} is 1-128 letters, digits, '_', '-' and '.'.",
        )
    return value


def fallback_key(style: str, target: str, variant: str) -> str:
    return f"{_name(style, 'style')}/{_name(target, 'stage')}/{_name(variant, 'variant')}"


def avatar_key(uid: str, avatar_id: str) -> str:
    return f"{_name(uid, 'user id')}/{_name(avatar_id, 'avatar id')}"


def parse_key(kind: ReviewKind, key: str) -> list[str]:
    parts = key.split("/")
    if len(parts) != (3 if kind == "fallback" else 2):
        shape = "<style>/<stage>/<variant>" if kind == "fallback" else "<user>/<avatar id>"
        raise UsageError(f"Invalid {kind} review key {key[:80]!r}.", f"A {kind} key reads {shape}.")
    for part in parts:
        _name(part, "key part")
    return parts


def effective_state(review: Review | None, sha256: str) -> ReviewState:
    """The state of the image whose hash is ``sha256``: a decision on another image is no decision."""
    if review is None or review.sha256 != sha256:
        return "draft"
    return review.state


def decide(
    previous: Review | None,
    kind: ReviewKind,
    key: str,
    sha256: str,
    state: str,
    by: str,
    note: str | None,
    now: datetime,
) -> Review:
    """The review after a person decides ``state`` (or only writes a note: ``state`` unchanged)."""
    if state not in REVIEW_STATES:
        raise UsageError(f"Unknown review state {state[:40]!r}.", f"Use one of: {', '.join(REVIEW_STATES)}.")
    by = (by or "").strip()
    if not by or len(by) > MAX_REVIEWER or any(ord(c) < 32 for c in by):
        raise UsageError(
            "A decision names who made it (1-80 printable characters).", "Pass --by NAME (or set MIRROR_REVIEWER)."
        )
    if note is not None and len(note) > MAX_NOTE:
        raise UsageError(f"The note is {len(note)} characters long.", f"Keep notes under {MAX_NOTE} characters.")
    same_image = previous is not None and previous.sha256 == sha256
    kept_note = previous.note if (previous is not None and same_image) else ""
    text = kept_note if note is None else note.strip()
    approved = sha256 if state == "approved" else (previous.approved_sha256 if previous else None)
    event: dict[str, Any] = {"state": state, "sha256": sha256, "by": by, "at": now.isoformat(), "note": text}
    history = [*(previous.history if previous else []), event]
    return Review(kind, key, state, sha256, by, now, text, approved, history)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StoreApprover:
    """The store's fallback approvals for one style, as FallbackSet asks for them (cached for a
    few seconds: a serving process reads them once, not per request)."""

    def __init__(
        self, store: Callable[[], ReviewStore], style: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self.style = style
        self._clock = clock
        self._loaded_at: float | None = None
        self._approved: set[str] = set()

    def _approved_keys(self) -> set[str]:
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at > APPROVAL_TTL_S:
            reviews = self._store().list_reviews("fallback", prefix=f"{self.style}/")
            self._approved = {f"{r.key}@{r.sha256}" for r in reviews if r.state == "approved"}
            self._loaded_at = now
        return self._approved

    def forget(self) -> None:
        self._loaded_at = None

    def __call__(self, folder: Path, entry: FallbackEntry) -> bool:
        key = fallback_key(self.style, entry.target, entry.variant)
        return f"{key}@{entry.sha256}" in self._approved_keys()

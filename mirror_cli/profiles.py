"""The app owns its user: a profile (appearance, personality, time zone, companion) created or
replaced by its owner, keeping the progress and due fields the tool maintains."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .errors import UsageError
from .models import Appearance, Companion, Persona, Voice, validate_user_id
from .stores.base import Store

NEW_USER_NAME = "Friend"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    from zoneinfo import available_timezones

    return frozenset(available_timezones())


def check_zone(name: str) -> str:
    """An IANA zone name known to this machine's zone database, or a user-worded error."""
    if name not in _zones():
        raise UsageError(
            f"Unknown time zone {name[:64]!r}.",
            "Use an IANA name such as Europe/Berlin or America/New_York (the device's zone id).",
        )
    return name


@dataclass
class ProfileUpdate:
    """What the app may set on its user: everything but the progress (sent with each request)."""

    name: str | None = None
    age: int | None = None
    appearance: Appearance = field(default_factory=Appearance)
    personality: list[str] = field(default_factory=list)
    timezone: str | None = None
    companion_voice: Voice | None = None
    companion_name: str | None = None


def save_profile(store: Store, uid: str, update: ProfileUpdate) -> tuple[Persona, bool]:
    """Create (True) or replace (False) the profile of ``uid``; progress is kept as stored."""
    validate_user_id(uid)
    if update.timezone is not None:
        check_zone(update.timezone)
    current = store.get_user(uid)
    companion = current.companion if current else Companion()
    companion = companion.model_copy(
        update={
            k: v for k, v in {"voice": update.companion_voice, "name": update.companion_name}.items() if v is not None
        }
    )
    fields: dict[str, object] = {
        "id": uid,
        "name": update.name or (current.name if current else NEW_USER_NAME),
        "age": update.age,
        "appearance": update.appearance,
        "personality": update.personality,
        "companion": companion,
        "timezone": update.timezone,
    }
    if current is not None:
        fields["progress"] = current.progress
        fields["consent"] = current.consent  # recorded by its own call, never by a profile rewrite
    persona = Persona.model_validate(fields)
    store.put_user(persona)
    if current is not None and current.timezone != persona.timezone:
        # The nightly window was computed with the old zone: the next tick looks at the user
        # again and, with the new zone's rules, serves them in window or moves them to their night.
        store.set_next_window(uid, 0)
    return persona, current is None

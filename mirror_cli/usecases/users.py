"""Users: lookup (with a helpful error for an unknown id), import, progress and time zone."""

from __future__ import annotations

from collections.abc import Iterator

from ..consent import ConsentChange, forget_photo_data
from ..consent import record_consent as record_photo_or_generation
from ..errors import UnknownUserError
from ..models import ConsentScope, Persona, Progress, validate_user_id
from ..wiring import Wiring
from .due import nightly_tick, reopen_window
from .shards import Shard


def user_ids(w: Wiring, shard: Shard | None = None) -> Iterator[str]:
    """The store's users, and only them (example personas are users once imported)."""
    for uid in w.store.iter_user_ids():
        if shard is None or shard.owns(uid):
            yield uid


def persona(w: Wiring, uid: str) -> Persona:
    validate_user_id(uid)
    stored = w.store.get_user(uid)
    if stored is not None:
        return stored
    known: list[str] = []
    for known_uid in w.store.iter_user_ids():
        known.append(known_uid)
        if len(known) > 20:
            break
    shown = ", ".join(known[:20]) + (" (and more: 'mirror users list')" if len(known) > 20 else "")
    raise UnknownUserError(
        f"Unknown user {uid!r}.",
        f"Known users: {shown}."
        if known
        else "The store has no users yet: add them with 'mirror users import "
        "FILE.yaml', or the example personas with 'mirror users import --examples'.",
    )


def set_progress(w: Wiring, uid: str, progress: Progress, current: Persona | None = None) -> Persona:
    """``current``: the profile just read (saves reading it again)."""
    current = current or persona(w, uid)  # a user of the store (example personas only once imported)
    updated = current.model_copy(update={"progress": progress.model_copy(update={"updated_at": w.now()})})
    w.store.put_user(updated)
    return updated


def progress_changed(stored: Progress, sent: Progress) -> bool:
    """The app sends its metrics on every call: only a change is written."""
    return stored.model_dump(exclude={"updated_at"}) != sent.model_dump(exclude={"updated_at"})


def import_users(w: Wiring, personas: list[Persona]) -> list[str]:
    """Add or replace users in the store; returns their ids. Each user's nightly window is
    recomputed with their zone's rules (the zone may have changed)."""
    tick = nightly_tick(w)
    for p in personas:
        w.store.put_user(p)
        reopen_window(w, tick, p)
    return [p.id for p in personas]


def record_consent(
    w: Wiring, uid: str, scope: ConsentScope, *, granted: bool, terms_version: str, recorded_by: str
) -> ConsentChange:
    """Record (or withdraw) a user's consent to ``scope`` at the core's time. Withdrawing photo
    consent also deletes what was kept of the photo (consent.forget_photo_data)."""
    persona = record_photo_or_generation(
        w.store, uid, scope, granted=granted, terms_version=terms_version, recorded_by=recorded_by, now=w.now
    )
    deleted = forget_photo_data(w, uid) if scope == "photo" and not granted else {}
    return ConsentChange(persona, deleted)


def set_timezone(w: Wiring, uid: str, name: str | None) -> Persona:
    """Set (or, with None, clear to the configured default) a user's IANA time zone; the
    window they are next served in follows the new zone at once."""
    from ..nightly import check_zone

    if name is not None:
        check_zone(name, "--tz")
    updated = persona(w, uid).model_copy(update={"timezone": name})
    w.store.put_user(updated)
    reopen_window(w, nightly_tick(w), updated)
    return updated


def import_examples(w: Wiring) -> list[str]:
    """Import the example personas shipped with the package (demo data, on request only)."""
    from ..config import example_personas

    return import_users(w, list(example_personas().values()))

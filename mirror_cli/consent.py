"""Consent: what a user agreed to, recorded on their profile, and the check that refuses a use of
their data without it — before anything is uploaded or paid.

Scopes: ``photo`` (a photo sent for the trilogy) and ``generation`` (avatar generation itself,
recorded for operators whose terms ask for it). The app records a user's own choice through
``POST /api/v1/users/{id}/consent``; operators with ``mirror users consent``. Firestore rules
never let a client write the field directly.

Withdrawing photo consent stops every later use of a photo (``require_consent``) and deletes
what was kept of it that is not one of the user's avatars (``forget_photo_data``): the files
uploaded to OpenAI for their photo jobs, the cache entries of requests drawn from the photo, and
the spool's retry markers of those jobs, and the images the quality gate rejected that were drawn
from the photo (``rejected-photo-*``, found through their ledger lines). The avatars stay
(the user's own; erasing the user removes them too).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import ConsentError, UnknownUserError, UsageError
from .held_files import forget_held_files
from .models import PHOTO_ROLE, ConsentRecord, ConsentScope, Persona, validate_user_id
from .stores.base import Store

if TYPE_CHECKING:
    from .wiring import Wiring


@dataclass
class ConsentChange:
    """A consent recorded: the updated profile, and what a withdrawal deleted (else empty)."""

    persona: Persona
    deleted: dict[str, int] = field(default_factory=dict)


TERMS_RE = re.compile(r"[A-Za-z0-9._-]{1,40}")
_KEPT_AT = re.compile(r"kept at (\S*/rejected-photo-[^\s;,)]+)")  # a ledger line's note of a rejected photo image


def record_consent(
    store: Store,
    uid: str,
    scope: ConsentScope,
    *,
    granted: bool,
    terms_version: str,
    recorded_by: str,
    now: Callable[[], datetime],
) -> Persona:
    """Record (or withdraw) ``scope`` for ``uid``; returns the updated profile."""
    if not TERMS_RE.fullmatch(terms_version):
        raise UsageError(
            f"Terms version {terms_version[:60]!r} is not a version name.",
            "Use 1-40 letters, digits, '.', '_' or '-', e.g. v1 or 2026-11.",
        )
    persona = store.get_user(validate_user_id(uid))
    if persona is None:
        raise UnknownUserError(
            f"User {uid!r} is not in the store.",
            "Create the user first ('mirror users import', or PUT /api/v1/users/{id} from the app).",
        )
    record = ConsentRecord(granted=granted, at=now(), terms_version=terms_version, recorded_by=recorded_by)
    updated = persona.model_copy(update={"consent": {**persona.consent, scope: record}})
    store.put_user(updated)
    return updated


def has_consent(persona: Persona, scope: ConsentScope) -> bool:
    record = persona.consent.get(scope)
    return record is not None and record.granted


def require_consent(persona: Persona, scope: ConsentScope) -> None:
    """Refuse a use of ``persona``'s data that is not covered by a current consent."""
    if has_consent(persona, scope):
        return
    record = persona.consent.get(scope)
    state = "withdrew consent" if record is not None else "has not consented"
    raise ConsentError(
        f"User {persona.id!r} {state} to the use of their {scope}; nothing was uploaded or paid.",
        f"Record the user's consent first: in the app (POST /api/v1/users/{persona.id}/consent) or "
        f"'mirror users consent --user {persona.id} --{scope}' once they have agreed.",
    )


def forget_photo_data(w: Wiring, uid: str) -> dict[str, int]:
    """After a withdrawal of photo consent: delete what was kept of the user's photo that is not
    one of their avatars. Idempotent (a repeat deletes nothing more); returns what went."""
    store = w.store
    drawn = {r.id for r in store.list_avatars(uid) if any(ref.role == PHOTO_ROLE for ref in r.references)}
    cache = 0
    for entry in store.cache_entries(uid):
        if entry.avatar_id in drawn:  # its request key hashes the photo: no request can use it again
            store.cache_delete(uid, entry.request_key)
            cache += 1
    markers, refs = w.spool.forget_photo_markers(uid)
    # the gate's rejects drawn from the photo: named rejected-photo-*, each named by its ledger line
    refs += [m.group(1) for e in store.iter_events(uid=uid) if (m := _KEPT_AT.search(e.detail or ""))]
    rejected = 0
    for ref in dict.fromkeys(refs):
        if store.image_size(ref):
            store.delete_image(ref)
            rejected += 1
    return {
        "openai_files": forget_held_files(w, uid, photo_only=True),
        "cache_entries": cache,
        "spool_files": markers,
        "rejected_images": rejected,
    }

"""The avatar a user chooses to show in the app's timeline: recorded in the store (counted per
stage by ``usage``), answered with I-There's line about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from . import messages
from .errors import NotFoundError
from .models import validate_user_id
from .planner import shown
from .stores.base import Selection

if TYPE_CHECKING:
    from .core import Mirror

AVATAR_ID_MAX = 128


@dataclass(frozen=True)
class Selected:
    user_id: str
    avatar_id: str
    evolution_stage: str
    target: str
    selected_at: str
    ithere_message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def select_avatar(core: Mirror, uid: str, avatar_id: str) -> Selected:
    """Record that ``uid`` shows their avatar ``avatar_id`` (one of their own, shown in their
    timeline); an unknown user or avatar changes nothing."""
    persona = core.persona(validate_user_id(uid))
    record = None
    if 0 < len(avatar_id) <= AVATAR_ID_MAX and avatar_id.isprintable():
        record = core.store.get_avatar(persona.id, avatar_id)
    if record is None or record.user_id != persona.id or not shown(record):
        raise NotFoundError(
            f"User {persona.id} has no avatar {avatar_id[:AVATAR_ID_MAX]!r} to show.",
            "Pick an avatar_id from the user's avatars (GET /api/v1/avatar/user/{id}).",
        )
    at = core.now()
    core.store.put_selection(Selection(persona.id, record.id, record.stage, record.target, at))
    return Selected(
        persona.id,
        record.id,
        record.stage,
        record.target,
        at.isoformat(),
        messages.selected(core.configs, persona, record),
    )

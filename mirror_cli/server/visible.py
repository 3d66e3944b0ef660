"""A finished job's answer is read again when it is polled (``GET /api/v1/jobs/{id}``), maybe long
after the job ended: an avatar it names may have been hidden since (reported by the user, flagged
by the image moderation). Such an avatar is never answered: the poll answers the user's latest
shown avatar instead (``status: "degraded"``, the user's own image), or the stage's fallback when
they have none (``status: "fallback"``, ``is_fallback: true``, no image URL) - what a generate that
hits a hidden avatar in the cache answers. What the job cost stays as it was answered: it was paid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import AvatarRecord
from ..planner import shown
from ..stores.base import Store
from .jobs import Result


class _Latest:
    """The user's latest shown avatar, read once (only when an answer needs replacing)."""

    def __init__(self, store: Store, uid: str) -> None:
        self.store, self.uid = store, uid
        self._read = False
        self._latest: AvatarRecord | None = None

    def __call__(self) -> AvatarRecord | None:
        if not self._read:
            good = [r for r in self.store.list_avatars(self.uid) if shown(r)]
            self._latest = max(good, key=lambda r: (r.created_at, r.id)) if good else None
            self._read = True
        return self._latest


def latest_shown(store: Store, uid: str) -> AvatarRecord | None:
    """The user's latest avatar that is not hidden (a blocking store call)."""
    return _Latest(store, uid)()


def _replaced(
    item: dict[str, Any], hidden: AvatarRecord, latest: AvatarRecord | None, sign: Callable[[str], str]
) -> dict[str, Any]:
    reason = f"avatar {hidden.id} is hidden by report {hidden.hidden_by}"
    if latest is not None:
        return {
            **item,
            "avatar_id": latest.id,
            "image_url": sign(latest.image_path),
            "ithere_message": latest.message,
            "cached": False,
            "status": "degraded",
            "evolution_stage": latest.stage,
            "reason": reason,
            "is_fallback": False,
        }
    return {
        **item,
        "avatar_id": None,
        "image_url": None,
        "ithere_message": "",
        "cached": False,
        "status": "fallback",
        "evolution_stage": None,
        "reason": reason,
        "is_fallback": True,
    }


def still_shown(store: Store, sign: Callable[[str], str], uid: str, result: Result) -> Result:
    """``result`` with every avatar hidden since the job ended replaced (a blocking store call)."""
    if result.status != 200:
        return result
    latest = _Latest(store, uid)
    checked: dict[str, AvatarRecord | None] = {}

    def item_of(item: Any) -> Any:
        aid = item.get("avatar_id") if isinstance(item, dict) else None
        if not isinstance(aid, str):
            return item
        if aid not in checked:
            checked[aid] = store.get_avatar(uid, aid)
        record = checked[aid]
        if record is None or record.hidden_by is None:  # gone with its erased user, or not hidden
            return item
        return _replaced(item, record, latest(), sign)

    body = result.body
    if isinstance(body.get("avatars"), list):
        new_body = {**body, "avatars": [item_of(a) for a in body["avatars"]]}
    else:
        new_body = item_of(body)
    return result if new_body == body else Result(result.status, new_body, result.headers)

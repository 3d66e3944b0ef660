"""Evolve during a provider outage degrades like generate (server/queued.py ``outage``): each
stage the provider failed is published for a worker to make once it answers again, and the answer
is 200 with a stand-in marked ``is_fallback``: the user's latest shown avatar (``status:
"degraded"``, their own older image), or the stage's fallback picture when they have none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..jobs import Outcome
from .visible import latest_shown

if TYPE_CHECKING:
    from .service import Service

REASON = (
    "The image provider is unavailable: {what} stands in, and the avatar is made as soon as the "
    "provider answers again (ask again later)."
)


async def evolve_avatars(svc: Service, outcomes: list[Outcome], started: float) -> list[dict[str, Any]]:
    """The avatars of an evolve: the ones made, and a stand-in for each the provider failed."""
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:  # in stage order on the user's ordering key: the anchor is made first
        await svc.queued.retry_later(o, False)
    latest = await svc.core.store_calls(latest_shown, svc.core.store, outcomes[0].user_id) if failed else None
    items = []
    for o in outcomes:
        if o.status != "failed":
            items.append(svc.avatar(o, started))
        elif latest is None:
            picture = REASON.format(what="the stage's fallback picture")
            stand_in = Outcome(o.user_id, o.target, "fallback", reason=picture)
            items.append(svc.avatar(stand_in, started))
        else:
            stand_in = Outcome(o.user_id, o.target, "degraded", reason=REASON.format(what="your latest avatar"))
            items.append(
                {
                    **svc.avatar(stand_in, started),
                    "avatar_id": latest.id,
                    "image_url": svc.signed_url(latest.image_path),
                    "ithere_message": latest.message,
                    "evolution_stage": latest.stage,
                    "is_fallback": True,  # not the stage asked for
                }
            )
    return items

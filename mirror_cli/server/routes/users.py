"""A user's own avatars, newest first, with signed URLs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ..auth import forbid
from ..schemas import AvatarPage
from .deps import USER_ID, Auth, Svc, documented

router = APIRouter()


@router.get(
    "/avatar/user/{user_id}",
    **documented(AvatarPage, 400, 401, 403, 422, 429, 503, summary="A user's avatars, newest first, with signed URLs"),
)
async def avatars(
    user_id: Annotated[str, Path(pattern=USER_ID)],
    who: Auth,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    forbid(who, user_id)
    return await svc.avatars(user_id, limit, cursor)

"""A user's own avatars, newest first, with signed URLs: a JSON array (the seed Flutter client's
shape) with the next page in a Link header; ``?envelope=true`` answers ``{items, next_cursor}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from ..auth import forbid
from ..schemas import AvatarPage, StoredAvatar
from .deps import PREFIX, USER_ID, Auth, Svc, documented

router = APIRouter()


@router.get(
    "/avatar/user/{user_id}",
    **documented(
        list[StoredAvatar] | AvatarPage,
        400,
        401,
        403,
        422,
        429,
        503,
        summary="A user's avatars, newest first, with signed URLs: a JSON array, the next page in the Link "
        "header (?envelope=true answers {items, next_cursor})",
    ),
)
async def avatars(
    user_id: Annotated[str, Path(pattern=USER_ID)],
    who: Auth,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    envelope: Annotated[bool, Query(description="Answer {items, next_cursor} instead of an array.")] = False,
) -> Response:
    forbid(who, user_id)
    page = await svc.avatars(user_id, limit, cursor)
    if envelope:
        return JSONResponse(page)
    headers = {}
    if page["next_cursor"]:
        nxt = f"{PREFIX}/avatar/user/{user_id}?limit={limit}&cursor={page['next_cursor']}"
        headers = {"Link": f'<{nxt}>; rel="next"', "X-Next-Cursor": page["next_cursor"]}
    return JSONResponse(page["items"], headers=headers)

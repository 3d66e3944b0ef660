"""PUT /api/v1/users/{id}/selected-avatar: the app records which avatar the user shows (owner
only) and gets I-There's line about it.

No ``from __future__ import annotations`` here: FastAPI reads the handler's annotations, and the
auth dependency is local to ``routes``."""

from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..selection import Selected, select_avatar
from .auth import Caller, forbid
from .problems import openapi_responses


class SelectAvatar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    avatar_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")


# The answer is the core's record of the choice, field for field (every field a string).
SelectedAvatar = create_model("SelectedAvatar", **{f.name: (str, ...) for f in fields(Selected)})  # type: ignore[call-overload]


def routes(caller: Callable[..., Awaitable[Caller]]) -> APIRouter:
    router = APIRouter()
    Auth = Annotated[Caller, Depends(caller)]

    @router.put(
        "/users/{user_id}/selected-avatar",
        response_model=SelectedAvatar,
        responses=openapi_responses(400, 401, 403, 404, 422, 429, 503),
        summary="Record the avatar the user shows in the timeline; answers I-There's line about it",
    )
    async def selected_avatar(
        user_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")],
        body: SelectAvatar,
        who: Auth,
        request: Request,
    ) -> Any:
        forbid(who, user_id)
        core = request.app.state.service.core
        chosen = await core.store_calls(select_avatar, core, user_id, body.avatar_id)
        return chosen.to_dict()

    return router

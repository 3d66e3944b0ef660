"""POST /api/v1/avatar/{avatar_id}/report: the signed-in user reports one of their avatars. It is
hidden from their list at once (the previous shown avatar becomes current), stored as an open
report for the operators (mirror reports), and counted against the user's daily limit, kept in
the store so it holds across instances (429 with Retry-After past it). A repeat is the same report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ...models import REPORT_NOTE_MAX, ReportStatus
from ..auth import forbid
from .deps import USER_ID, Auth, Svc, documented

router = APIRouter()

AppReason = Literal["offensive", "scary", "not_me", "wrong_look", "other"]  # models.APP_REPORT_REASONS


class ReportBody(BaseModel):
    """Fields the server does not know are ignored; a known field of the wrong type is refused."""

    model_config = ConfigDict(extra="ignore", strict=True)

    reason: AppReason = Field(description="Why the user reports the avatar.")
    note: StrictStr = Field("", max_length=REPORT_NOTE_MAX, description="The user's own words (optional).")
    user_id: StrictStr | None = Field(
        None, pattern=USER_ID, description="Whose avatar it is (default: the signed-in user; others: admins only)."
    )


class ReportAnswer(BaseModel):
    report_id: str
    user_id: str
    avatar_id: str
    reason: str
    status: ReportStatus
    created_at: datetime
    created: bool = Field(description="false: the avatar had been reported already (nothing changed).")
    hidden: bool = Field(description="Whether the avatar is now hidden from the user's list.")


@router.post(
    "/avatar/{avatar_id}/report",
    status_code=201,
    **documented(
        ReportAnswer,
        401,
        403,
        404,
        409,
        422,
        429,
        503,
        summary="Report one of the user's avatars: hidden at once, reviewed by an operator (201; 200 when repeated)",
    ),
)
async def report(
    avatar_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,128}$")], body: ReportBody, who: Auth, svc: Svc
) -> Response:
    uid = body.user_id or who.uid
    forbid(who, uid)
    core = svc.core
    by = "app" if who.uid == uid else "admin"
    filed = await core.store_calls(core.report_avatar, uid, avatar_id, body.reason, body.note.strip(), by)
    r = filed.report
    answer = ReportAnswer(
        report_id=r.id,
        user_id=r.user_id,
        avatar_id=r.avatar_id,
        reason=r.reason,
        status=r.status,
        created_at=r.created_at,
        created=filed.created,
        hidden=r.status != "restored",
    )
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if filed.created else 200)

"""Operators' figures (admins only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ..schemas import Usage
from .deps import USER_ID, Admin, Svc, documented

router = APIRouter()
USAGE = "Spend, generations and cache hits (admins only)"


@router.get("/usage", **documented(Usage, 401, 403, 404, 422, 429, 503, summary=USAGE))
async def usage(
    _: Admin,
    svc: Svc,
    period: Annotated[Literal["month", "today"], Query()] = "month",
    user: Annotated[str | None, Query(pattern=USER_ID)] = None,
) -> Any:
    return await svc.usage(period, user)

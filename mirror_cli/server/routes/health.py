"""Liveness and readiness probes (no sign-in)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..schemas import Health, Ready
from .deps import Svc

router = APIRouter()


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Any:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Store or provider unreachable"}},
    summary="Store and provider reachable",
)
async def readyz(svc: Svc) -> Any:
    ok, checks = await svc.ready()
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

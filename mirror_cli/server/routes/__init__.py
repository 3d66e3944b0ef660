"""The HTTP API under /api/v1: one router per resource; auth, the rate limit and the admin check
are dependencies (``deps``)."""

from __future__ import annotations

from fastapi import APIRouter

from . import admin, avatars, health, jobs, users
from .deps import PREFIX


def api_router() -> APIRouter:
    router = APIRouter()
    for module in (avatars, jobs, users, admin, health):
        router.include_router(module.router)
    return router


__all__ = ["PREFIX", "api_router"]

"""The HTTP API under /api/v1: one router per resource; auth, the rate limit and the admin check
are dependencies (``deps``)."""

from __future__ import annotations

from fastapi import APIRouter

from .. import selection
from ..users import users_router
from . import admin, avatars, health, jobs, queue, reports, users
from .deps import PREFIX, caller


def api_router() -> APIRouter:
    router = APIRouter()
    for module in (avatars, reports, jobs, users, admin, health, queue):
        router.include_router(module.router)
    router.include_router(users_router(caller))  # the app's profile of its user (server/users.py)
    router.include_router(selection.routes(caller))  # the avatar a user shows (server/selection.py)
    return router


__all__ = ["PREFIX", "api_router"]

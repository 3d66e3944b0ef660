"""Making avatars: one stage, the next stage, the trilogy. Each starts (or joins) a job."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..auth import forbid
from ..schemas import AvatarResponse, EvolveRequest, EvolveResponse, GenerateRequest, TrilogyResponse
from ..service import photo_too_large, request_key
from .answers import ACCEPTED, answer
from .deps import USER_ID, Auth, Svc, documented

router = APIRouter()
COMMON = (400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503)


def _doc(model: type[BaseModel], summary: str, *more: int) -> dict[str, Any]:
    """A job-starting route: its answer, 202 while the job runs, and its problems."""
    return documented(model, *COMMON, *more, responses=ACCEPTED, summary=summary)


@router.post("/avatar/generate", **_doc(AvatarResponse, "Make (or return the cached) avatar of one stage for a user"))
async def generate(body: GenerateRequest, who: Auth, svc: Svc) -> Response:
    forbid(who, body.user_id)
    target = svc.core.configs.stages.parse_target(body.evolution_stage)
    progress = body.progress_metrics.to_progress() if body.progress_metrics else None
    if not body.regenerate and svc.jobs.accepting:  # an avatar the user has: two reads, no job
        hit = await svc.cached.answer(body.user_id, target, progress)
        if hit is not None:
            return JSONResponse(hit)
    # one job per user, stage and intent: fresh metrics do not change which picture a stage has
    key = request_key(body.user_id, "generate", target, body.regenerate)
    params = {
        "user_id": body.user_id,
        "target": target,
        "progress": progress.model_dump(mode="json") if progress else None,
        "regenerate": body.regenerate,
    }
    job, joined = await svc.run(key, who, "generate", params)
    return answer(job, joined)


@router.post(
    "/avatar/evolve",
    **_doc(
        EvolveResponse, "The next stage if the user's progress crossed a milestone (the nightly run, for one user, now)"
    ),
)
async def evolve(body: EvolveRequest, who: Auth, svc: Svc) -> Response:
    forbid(who, body.user_id)
    progress = body.progress_metrics.to_progress() if body.progress_metrics else None
    key = request_key(body.user_id, "evolve", progress.model_dump() if progress else None)
    params = {"user_id": body.user_id, "progress": progress.model_dump(mode="json") if progress else None}
    job, joined = await svc.run(key, who, "evolve", params)
    return answer(job, joined)


@router.post(
    "/avatar/trilogy",
    **_doc(TrilogyResponse, "The trilogy (past, present, future), optionally from a photo (EXIF stripped)", 415),
)
async def trilogy(
    who: Auth,
    svc: Svc,
    user_id: Annotated[str, Form(pattern=USER_ID)],
    photo: Annotated[UploadFile | None, File(description="PNG, JPEG or WebP, within the CLI's limits")] = None,
) -> Response:
    forbid(who, user_id)
    data: bytes | None = None
    if photo is not None:
        limit = svc.core.configs.limits.photo.max_bytes
        data = await photo.read(limit + 1)
        if len(data) > limit:
            raise photo_too_large(photo.size or 0, limit)
    digest = hashlib.sha256(data).hexdigest() if data else None
    key = request_key(user_id, "trilogy", digest)
    job, joined = await svc.run(key, who, "trilogy", {"user_id": user_id, "photo": data, "photo_sha": digest})
    return answer(job, joined)

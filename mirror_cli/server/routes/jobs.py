"""Polling a slow generation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from ..problems import openapi_responses
from .answers import ACCEPTED, accepted, answer, respond
from .deps import Auth, Svc

router = APIRouter()


@router.get(
    "/jobs/{job_id}",
    responses={
        200: {"description": "The finished job's answer (the body of the request that started it)"},
        **ACCEPTED,
        **openapi_responses(401, 404, 422, 429),
    },
    summary="Poll a slow generation",
)
async def job(job_id: Annotated[str, Path(max_length=64)], who: Auth, svc: Svc) -> Response:
    """Answered by any instance: this one's running job, else the job's state in the store."""
    found, stored = await svc.poll(job_id, who)
    if found is not None:
        return answer(found, False)
    if stored is not None:
        return respond(stored)
    return accepted(job_id)

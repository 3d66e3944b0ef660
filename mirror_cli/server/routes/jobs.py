"""Polling a slow generation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from ..problems import ProblemError, openapi_responses
from .answers import ACCEPTED, answer
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
    found = svc.jobs.get(job_id)
    if found is None or not who.may_act_on(found.owner):
        raise ProblemError(
            404,
            "unknown-job",
            "Unknown job",
            f"No job {job_id[:64]!r} for this user on this server.",
            "Send the original request again: it answers from the cache, or waits for the image "
            "still being made (another server's job included); it is never paid twice.",
        )
    return answer(found, False)

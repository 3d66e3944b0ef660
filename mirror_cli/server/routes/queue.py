"""Pub/Sub push delivery (server/push.py): the job runs within the request; 204 acks it."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import Response

from ..problems import ProblemError, openapi_responses
from ..push import PushRunner, check_push_token, message_of
from .deps import Svc

router = APIRouter()


@router.post(
    "/queue/push",
    status_code=204,
    responses={
        204: {"description": "Done: its answer is stored (Pub/Sub acks the message)"},
        **openapi_responses(401, 403, 413, 422, 429),
    },
    summary="Run one queued job pushed by Pub/Sub (OIDC-authenticated push subscription)",
)
async def push(
    request: Request,
    svc: Svc,
    envelope: Annotated[dict[str, Any], Body()],
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    check_push_token(svc.settings, authorization)
    message = message_of(envelope)
    runner: PushRunner = request.app.state.push
    later = await runner.run(message)
    if later is None:
        return Response(status_code=204)
    wait = max(1, math.ceil(later or 10))
    raise ProblemError(
        429,
        "retry-later",
        "Not done yet",
        "This job cannot finish now (its provider or store failed, or another instance runs it).",
        f"Pub/Sub delivers it again (after {wait} s or its retry policy).",
        retry_after_s=wait,
    )

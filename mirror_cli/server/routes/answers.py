"""How a job becomes a response: 202 with a poll URL while it runs, else its result (a request
that joined a running job paid nothing, so its answer says cached at cost 0)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from ..jobs import Job, Result
from ..problems import MEDIA_TYPE
from ..schemas import JobAccepted
from ..service import POLL_AFTER_S
from .deps import PREFIX

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": JobAccepted, "description": "Still running: poll the job URL"}
}


def answer(job: Job, joined: bool) -> Response:
    if not job.done:
        return accepted(job.id)
    result = job.result()
    return respond(Result(result.status, _as_joined(result), result.headers) if joined else result)


def accepted(job_id: str) -> Response:
    """202: the job still runs; poll its URL."""
    url = f"{PREFIX}/jobs/{job_id}"
    body = JobAccepted(job_id=job_id, poll_url=url, retry_after_s=POLL_AFTER_S)
    return JSONResponse(body.model_dump(), 202, headers={"Location": url, "Retry-After": str(POLL_AFTER_S)})


def respond(result: Result) -> Response:
    media = MEDIA_TYPE if result.status >= 400 else "application/json"
    return JSONResponse(result.body, result.status, headers=result.headers, media_type=media)


def _as_joined(result: Result) -> dict[str, Any]:
    if result.status != 200:
        return result.body

    def mark(a: dict[str, Any]) -> dict[str, Any]:
        return {**a, "cached": True, "cost": 0.0}

    body = dict(result.body)
    if "avatars" in body:
        body["avatars"] = [mark(a) for a in body["avatars"]]
        return body
    return mark(body)

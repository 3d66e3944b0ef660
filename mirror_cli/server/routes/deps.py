"""What routes depend on: the server's one Service, the verified caller (counted against their
request rate), and the admin check. Each is a FastAPI dependency, declared once here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from ..auth import Caller
from ..guards import limit_unauthenticated
from ..problems import ProblemError, openapi_responses
from ..service import Service

PREFIX = "/api/v1"
USER_ID = r"^[A-Za-z0-9_-]{1,128}$"


def documented(model: Any, *statuses: int, summary: str, **extra: Any) -> dict[str, Any]:
    """A route's OpenAPI description: its body model, its problem statuses, a summary."""
    responses = {**extra.pop("responses", {}), **openapi_responses(*statuses)}
    return {"response_model": model, "responses": responses, "summary": summary, **extra}


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


Svc = Annotated[Service, Depends(service)]


async def caller(request: Request, svc: Svc, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """The verified caller of a request (401 otherwise), counted against their request rate; a
    request that ends unauthenticated counts against its address's rate (429 past it)."""
    try:
        who = await svc.caller(authorization)
    except ProblemError as p:
        if p.problem.status == 401:
            address = request.client.host if request.client else "unknown"
            await limit_unauthenticated(svc.core, address, svc.settings.serve_ip_rate_per_minute)
        raise
    request.scope.setdefault("state", {})["uid"] = who.uid
    return who


Auth = Annotated[Caller, Depends(caller)]


async def admin(who: Auth) -> Caller:
    """A caller with the 'admin' custom claim (403 otherwise)."""
    if not who.admin:
        raise ProblemError(
            403,
            "admins-only",
            "Admins only",
            "Usage figures are for admins.",
            "Sign in with an account that has the 'admin' custom claim.",
        )
    return who


Admin = Annotated[Caller, Depends(admin)]

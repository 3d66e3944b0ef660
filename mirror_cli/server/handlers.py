"""One problem-details handler: every error a request can meet becomes an
application/problem+json body (RFC 9457) with the same shape, and a bug is logged, never shown."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ..errors import MirrorError
from .problems import MEDIA_TYPE, ProblemError, from_error, internal

log = logging.getLogger("mirror.serve")
HANDLED = (ProblemError, MirrorError, RequestValidationError, StarletteHTTPException, Exception)


def as_problem(exc: Exception) -> ProblemError:
    """The problem an exception is shown as."""
    if isinstance(exc, ProblemError):
        return exc
    if isinstance(exc, MirrorError):
        return from_error(exc)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return ProblemError(
            422,
            "invalid-request",
            "Invalid request",
            f"Invalid {where}: {first.get('msg', 'invalid value')}.",
            "See the request schema at /openapi.json.",
        )
    if isinstance(exc, StarletteHTTPException):
        titles = {404: "Not found", 405: "Method not allowed"}
        title = titles.get(exc.status_code, "HTTP error")
        return ProblemError(exc.status_code, "http", title, str(exc.detail), "See the API at /docs.")
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    return internal()


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """Every method the request's path has: each method is tried against the routes (Starlette
    names only the first route it meets, and included routers hide their routes' methods)."""
    allowed = [
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in request.app.routes)
    ]
    return ", ".join(allowed)


async def on_error(request: Request, exc: Exception) -> Response:
    p = as_problem(exc)
    body = p.problem.model_dump(exclude_none=True)
    headers = p.headers()
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)  # a 405 says which methods the resource has
    return JSONResponse(body, p.problem.status, headers=headers, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    for kind in HANDLED:
        app.add_exception_handler(kind, on_error)
    _problem_media_type(app)


def _problem_media_type(app: FastAPI) -> None:
    """Document error bodies as application/problem+json (what they are sent as)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path in schema.get("paths", {}).values():
            for op in path.values():
                for status, resp in op.get("responses", {}).items():
                    content = resp.get("content", {})
                    if status.startswith(("4", "5")) and "application/json" in content:
                        ref = json.dumps(content["application/json"])
                        if "Problem" in ref:
                            resp["content"] = {MEDIA_TYPE: content["application/json"]}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

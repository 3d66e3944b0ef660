"""The FastAPI application: routes under /api/v1, problem details, limits, access logs.

``create_app`` builds it around one ``Mirror`` core (loaded once per process); ``app_from_env``
is the factory uvicorn imports in each worker (settings come from MIRROR_* variables).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..core import Mirror
from ..errors import MirrorError
from ..settings import Settings
from . import selection
from .auth import Caller, TokenVerifier, forbid
from .guards import AccessLog, BodyLimit
from .jobs import Job, Result
from .problems import MEDIA_TYPE, ProblemError, from_error, internal, openapi_responses
from .schemas import (
    AvatarPage,
    AvatarResponse,
    EvolveRequest,
    EvolveResponse,
    GenerateRequest,
    Health,
    JobAccepted,
    Ready,
    TrilogyResponse,
    Usage,
)
from .service import POLL_AFTER_S, Service, photo_too_large, request_key
from .users import users_router

log = logging.getLogger("mirror.serve")
PREFIX = "/api/v1"
UPLOAD_OVERHEAD = 64 * 1024  # multipart framing and form fields around the photo


def create_app(settings: Settings, *, core: Mirror | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    core = core or Mirror(settings, owns_process=False)
    svc = Service(core, verifier or TokenVerifier(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        swept = await core.asweep_spool()
        if swept:
            log.info("stored %d paid image(s) left in the spool by an earlier process", len(swept))
        try:
            yield
        finally:
            running = svc.jobs.in_flight
            if running:
                log.info("shutting down: waiting for %d generation(s) in flight", running)
            left = await svc.jobs.drain(settings.serve_shutdown_grace_s)
            if left:
                log.warning(
                    "%d generation(s) still running after the grace period; their paid images stay "
                    "in the spool and are stored at the next start",
                    left,
                )
            await core.aclose()
            svc.verifier.close()
            from ..telemetry.serve import uninstall

            uninstall(app)

    app = FastAPI(
        title="mirror",
        version=__version__,
        summary="Mirror Realm avatars for the app, on the same core as the mirror CLI.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = svc
    _handlers(app)
    app.include_router(_routes(svc), prefix=PREFIX)
    app.include_router(users_router(_caller), prefix=PREFIX)
    app.include_router(selection.routes(_caller), prefix=PREFIX)
    _problem_media_type(app)

    origins = [o.strip() for o in settings.serve_cors_origins.split(",") if o.strip()]
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    photo_limit = core.configs.limits.photo.max_bytes + UPLOAD_OVERHEAD

    def limit_for(path: str) -> int:
        return photo_limit if path == f"{PREFIX}/avatar/trilogy" else settings.serve_max_body_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(AccessLog)
    from ..telemetry.serve import install as observe  # /metrics, traces, request metrics: outermost

    observe(app, core, lambda: svc.jobs.in_flight, settings.metrics_token, enabled=settings.serve_metrics)
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory (``--factory``): settings from MIRROR_* variables and mirror.yaml."""
    from ..settings import load_settings

    _json_logging()
    return create_app(load_settings())


# ---------------------------------------------------------------------------------- routes
async def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """The verified caller of a request (401 otherwise), counted against their request rate."""
    svc: Service = request.app.state.service
    who = await svc.caller(authorization)
    request.scope.setdefault("state", {})["uid"] = who.uid
    return who


Auth = Annotated[Caller, Depends(_caller)]


def _routes(svc: Service) -> APIRouter:
    router = APIRouter()

    common = (400, 401, 403, 404, 413, 422, 429, 500, 502, 503)
    accepted: dict[int | str, dict[str, Any]] = {
        202: {"model": JobAccepted, "description": "Still running: poll the job URL"}
    }

    def answer(job: Job, joined: bool) -> Response:
        if not job.done:
            url = f"{PREFIX}/jobs/{job.id}"
            body = JobAccepted(job_id=job.id, poll_url=url, retry_after_s=POLL_AFTER_S)
            return JSONResponse(body.model_dump(), 202, headers={"Location": url, "Retry-After": str(POLL_AFTER_S)})
        result = job.result()
        shown = _as_joined(result) if joined else result.body
        return _respond(Result(result.status, shown, result.headers))

    @router.post(
        "/avatar/generate",
        response_model=AvatarResponse,
        responses={**accepted, **openapi_responses(*common)},
        summary="Make (or return the cached) avatar of one stage for a user",
    )
    async def generate(body: GenerateRequest, who: Auth) -> Response:
        forbid(who, body.user_id)
        target = svc.core.configs.stages.parse_target(body.evolution_stage)
        progress = body.progress_metrics.to_progress() if body.progress_metrics else None
        # one job per user, stage and intent: fresh metrics do not change which picture a stage has
        key = request_key(body.user_id, "generate", target, body.regenerate)
        job, joined = await svc.run(
            key, who, "generate", lambda: svc.generate(body.user_id, target, progress, body.regenerate)
        )
        return answer(job, joined)

    @router.post(
        "/avatar/evolve",
        response_model=EvolveResponse,
        responses={**accepted, **openapi_responses(*common)},
        summary="The next stage if the user's progress crossed a milestone (the nightly run, for one user, now)",
    )
    async def evolve(body: EvolveRequest, who: Auth) -> Response:
        forbid(who, body.user_id)
        progress = body.progress_metrics.to_progress() if body.progress_metrics else None
        key = request_key(body.user_id, "evolve", progress.model_dump() if progress else None)
        job, joined = await svc.run(key, who, "evolve", lambda: svc.evolve(body.user_id, progress))
        return answer(job, joined)

    @router.post(
        "/avatar/trilogy",
        response_model=TrilogyResponse,
        responses={**accepted, **openapi_responses(*common, 415)},
        summary="The trilogy (past, present, future), optionally from a photo (EXIF stripped)",
    )
    async def trilogy(
        who: Auth,
        user_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_-]{1,128}$")],
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
        job, joined = await svc.run(key, who, "trilogy", lambda: svc.trilogy(user_id, data))
        return answer(job, joined)

    @router.get(
        "/jobs/{job_id}",
        responses={
            200: {"description": "The finished job's answer (the body of the request that started it)"},
            **accepted,
            **openapi_responses(401, 404, 422, 429),
        },
        summary="Poll a slow generation",
    )
    async def job(job_id: Annotated[str, Path(max_length=64)], who: Auth) -> Response:
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

    @router.get(
        "/avatar/user/{user_id}",
        response_model=AvatarPage,
        responses=openapi_responses(400, 401, 403, 422, 429, 503),
        summary="A user's avatars, newest first, with signed URLs",
    )
    async def avatars(
        user_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")],
        who: Auth,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        forbid(who, user_id)
        return await svc.avatars(user_id, limit, cursor)

    @router.get(
        "/usage",
        response_model=Usage,
        responses=openapi_responses(401, 403, 404, 422, 429, 503),
        summary="Spend, generations and cache hits (admins only)",
    )
    async def usage(
        who: Auth,
        period: Annotated[Literal["month", "today"], Query()] = "month",
        user: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,128}$")] = None,
    ) -> Any:
        if not who.admin:
            raise ProblemError(
                403,
                "admins-only",
                "Admins only",
                "Usage figures are for admins.",
                "Sign in with an account that has the 'admin' custom claim.",
            )
        return await svc.usage(period, user)

    @router.get("/healthz", response_model=Health, summary="The process is up")
    async def healthz() -> Any:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Ready,
        responses={503: {"model": Ready, "description": "Store or provider unreachable"}},
        summary="Store and provider reachable",
    )
    async def readyz() -> Any:
        ok, checks = await svc.ready()
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

    return router


def _as_joined(result: Result) -> dict[str, Any]:
    """A request that joined a running job paid nothing: its answer says cached, cost 0."""
    if result.status != 200:
        return result.body

    def mark(a: dict[str, Any]) -> dict[str, Any]:
        return {**a, "cached": True, "cost": 0.0}

    body = dict(result.body)
    if "avatars" in body:
        body["avatars"] = [mark(a) for a in body["avatars"]]
        return body
    return mark(body)


def _respond(result: Result) -> Response:
    media = MEDIA_TYPE if result.status >= 400 else "application/json"
    return JSONResponse(result.body, result.status, headers=result.headers, media_type=media)


def _problem(p: ProblemError) -> Response:
    return JSONResponse(
        p.problem.model_dump(exclude_none=True), p.problem.status, headers=p.headers(), media_type=MEDIA_TYPE
    )


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def on_problem(_: Request, exc: ProblemError) -> Response:
        return _problem(exc)

    @app.exception_handler(MirrorError)
    async def on_mirror_error(_: Request, exc: MirrorError) -> Response:
        return _problem(from_error(exc))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return _problem(
            ProblemError(
                422,
                "invalid-request",
                "Invalid request",
                f"Invalid {where}: {first.get('msg', 'invalid value')}.",
                "See the request schema at /openapi.json.",
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        return _problem(
            ProblemError(
                exc.status_code,
                "http",
                titles.get(exc.status_code, "HTTP error"),
                str(exc.detail),
                "See the API at /docs.",
            )
        )

    @app.exception_handler(Exception)
    async def on_bug(_: Request, exc: Exception) -> Response:
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return _problem(internal())


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


def _json_logging() -> None:
    """JSON lines Cloud Logging parses (severity, message, trace): telemetry/logs.py."""
    from ..telemetry import logs

    logs.configure(
        ("mirror",), sys.stderr, os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("MIRROR_FIREBASE_PROJECT")
    )

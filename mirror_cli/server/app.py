"""The FastAPI application: routers under /api/v1 (``routes``), problem details (``handlers``),
limits, access logs.

``create_app`` builds it around one ``Mirror`` core (loaded once per process); ``app_from_env``
is the factory uvicorn imports in each worker (settings come from MIRROR_* variables).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..core import Mirror
from ..settings import Settings
from . import handlers
from .auth import TokenVerifier
from .guards import AccessLog, BodyLimit
from .push import PushRunner
from .queued import EmbeddedWorker, wants_embedded_worker
from .routes import PREFIX, api_router
from .service import Service

log = logging.getLogger("mirror.serve")
UPLOAD_OVERHEAD = 64 * 1024  # multipart framing and form fields around the photo


def create_app(settings: Settings, *, core: Mirror | None = None, verifier: TokenVerifier | None = None) -> FastAPI:
    core = core or Mirror(settings, owns_process=False)
    svc = Service(core, verifier or TokenVerifier(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        swept = await core.asweep_spool()
        if swept:
            log.info("stored %d paid image(s) left in the spool by an earlier process", len(swept))
        embedded = EmbeddedWorker(svc) if wants_embedded_worker(settings) else None
        if embedded is not None:
            embedded.start()
        flusher = asyncio.create_task(svc.hits.run(settings.serve_hits_flush_s))
        try:
            yield
        finally:
            running = svc.jobs.in_flight  # said before the embedded worker's stop, which may wait
            if running:
                log.info("shutting down: waiting for %d generation(s) in flight", running)
            if embedded is not None:  # stops pulling; a job it waits for finishes with the others
                await embedded.stop(settings.serve_shutdown_grace_s)
            left = await svc.jobs.drain(settings.serve_shutdown_grace_s)
            await svc.durable.drain(5.0)  # the answers of finished 202 jobs reach the store
            if left:
                log.warning(
                    "%d generation(s) still running after the grace period; their paid images stay "
                    "in the spool and are stored at the next start",
                    left,
                )
            flusher.cancel()
            await _book_hits(svc)
            await core.aclose()
            if svc.verifier is not None:
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
    app.state.push = PushRunner(svc)  # POST /api/v1/queue/push (server/push.py)
    handlers.install(app)
    app.include_router(api_router(), prefix=PREFIX)

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


async def _book_hits(svc: Service) -> None:
    """The last cache hits counted in memory reach the ledger before the store closes."""
    try:
        booked = await svc.hits.flush()
    except Exception:
        log.exception("cache hits could not be booked at shutdown (%d lost)", svc.hits.pending)
        return
    if svc.hits.pending:
        log.warning("%d cache hit(s) could not be booked at shutdown", svc.hits.pending)
    elif booked:
        log.info("booked %d cache hit(s) counted since the last flush", booked)


def app_from_env() -> FastAPI:
    """uvicorn's factory (``--factory``): settings from MIRROR_* variables and mirror.yaml."""
    from ..settings import load_settings

    _json_logging()
    return create_app(load_settings())


def _json_logging() -> None:
    """JSON lines Cloud Logging parses (severity, message, trace): telemetry/logs.py."""
    from ..telemetry import logs

    logs.configure(
        ("mirror",), sys.stderr, os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("MIRROR_FIREBASE_PROJECT")
    )

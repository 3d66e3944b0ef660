"""mirror serve: the HTTP API for the app (FastAPI on uvicorn), on the same core as every command."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from .common import DebugOpt, guarded, settings_from, with_settings


@with_settings
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port [env PORT].", envvar="PORT")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Processes, each with its own core.")] = 1,
    debug: DebugOpt = False,
    *,
    flags: dict[str, Any],
) -> None:
    """Serve /api/v1 (generate, evolve, trilogy, avatars, usage, jobs) to the app, with Firebase Auth."""

    def check() -> None:
        # Fail here, with the CLI's wording and exit code, rather than inside each worker.
        from ..server.auth import TokenVerifier

        settings = settings_from(**flags)
        TokenVerifier(settings).close()

    guarded(check, as_json=False, debug=debug)
    for name, value in flags.items():  # every worker reads the same settings from the environment
        if value is not None:
            os.environ[f"MIRROR_{name.upper()}"] = str(value)
    import uvicorn

    uvicorn.run(
        "mirror_cli.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # the app writes its own JSON access lines, without tokens
        proxy_headers=True,
        server_header=False,
        log_level="info",
    )

"""mirror serve: the HTTP API for the app (FastAPI on uvicorn), on the same core as every command."""

from __future__ import annotations

import importlib.util
import os
from typing import Annotated

from .common import Edge, option, with_settings

SERVE_PANEL = "Server"


def _server_option(name: str, env: str, metavar: str, help: str, **kw: object) -> object:
    """An option of the server itself: its flag, its environment variable, in the server panel."""
    return option(name, metavar=metavar, env=env, panel=SERVE_PANEL, help=help, **kw)


@with_settings
def serve(
    host: Annotated[
        str, _server_option("--host", "MIRROR_HOST", "ADDRESS", "Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        _server_option(
            "--port",
            "PORT",
            "N",
            "Port to listen on; 0 picks a free one (Cloud Run sets PORT; --port wins over it).",
            min=0,
            max=65535,
        ),
    ] = 8080,
    workers: Annotated[
        int, _server_option("--workers", "MIRROR_WORKERS", "N", "Processes, each with its own core.", min=1, max=64)
    ] = 1,
    *,
    edge: Edge,
) -> None:
    """Serve /api/v1 (generate, evolve, trilogy, avatars, usage, jobs) to the app, with Firebase Auth."""

    def check() -> None:
        # Fail here, with the CLI's wording and exit code, rather than inside each worker.
        from ..errors import ConfigError
        from ..server.auth import TokenVerifier

        missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"'mirror serve' needs the serve extra ({', '.join(missing)} not installed).",
                "pip install 'mirror-realm-avatars[serve]'",
            )
        TokenVerifier(edge.settings()).close()
        core = edge.open()
        try:
            _ = core.store  # opens the store and its credentials, as each worker will
        finally:
            core.close()

    edge.guard(check)
    for name, value in edge.flags.items():  # every worker reads the same settings from the environment
        if value is not None:
            os.environ["MIRROR_SETTINGS" if name == "settings_file" else f"MIRROR_{name.upper()}"] = str(value)
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

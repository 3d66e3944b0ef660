from pathlib import Path
from typing import Annotated, Any

import typer

from .common import DebugOpt, JsonOpt, emit_json, guarded, open_core, with_settings


@with_settings
def gallery(
    flags: dict[str, Any],
    user: Annotated[list[str] | None, typer.Option("--user", "-u", help="User id (repeatable).")] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every user with avatars.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("gallery"),
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Contact-sheet PNGs (paged) and an HTML page of thumbnails linking to full images, for review."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.gallery(user, out, everyone=everyone)
        finally:
            core.close()

    paths = guarded(call, as_json=as_json, debug=debug)
    if as_json:
        emit_json(paths)
    else:
        for sheet in paths.get("contact_sheets") or [paths["contact_sheet"]]:
            typer.echo(f"contact sheet: {sheet}")
        typer.echo(f"html page:     {paths['html']}")

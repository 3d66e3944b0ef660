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
    """A contact-sheet PNG and a self-contained HTML page of users' timelines, for review."""

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
        typer.echo(f"contact sheet: {paths['contact_sheet']}\nhtml page:     {paths['html']}")

from pathlib import Path
from typing import Annotated, Any

from .common import DebugOpt, Edge, JsonOpt, option, with_store_settings


@with_store_settings
def gallery(
    flags: dict[str, Any],
    user: Annotated[list[str] | None, option("--user", "-u", metavar="USER", help="User id (repeatable).")] = None,
    everyone: Annotated[bool, option("--all", help="Every user with avatars.")] = False,
    out: Annotated[Path, option("--out", metavar="DIR", help="Output folder.")] = Path("gallery"),
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """A contact-sheet PNG and a self-contained HTML page of users' timelines, for review."""
    edge = Edge(flags, as_json, debug)
    paths = edge.run(lambda core: core.gallery(user, out, everyone=everyone))

    def human() -> None:
        import typer

        typer.echo(f"contact sheet: {paths['contact_sheet']}\nhtml page:     {paths['html']}")

    edge.emit(paths, items=[{"kind": k, "path": v} for k, v in paths.items()], human=human)

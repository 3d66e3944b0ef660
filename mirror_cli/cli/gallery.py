from pathlib import Path
from typing import Annotated

from .common import Edge, option, with_store_settings
from .outputs import check_output_dir


@with_store_settings
def gallery(
    edge: Edge,
    user: Annotated[list[str] | None, option("--user", "-u", metavar="USER", help="User id (repeatable).")] = None,
    everyone: Annotated[bool, option("--all", help="Every user with avatars.")] = False,
    out: Annotated[Path, option("--out", metavar="DIR", help="Output folder.")] = Path("gallery"),
) -> None:
    """Contact-sheet PNGs (paged) and an HTML page of thumbnails linking to full images, for review."""
    edge.guard(lambda: check_output_dir(out))
    paths = edge.run(lambda core: core.gallery(user, out, everyone=everyone))
    sheets = paths.get("contact_sheets") or [paths["contact_sheet"]]

    def human() -> None:
        import typer

        for sheet in sheets:
            typer.echo(f"contact sheet: {sheet}")
        typer.echo(f"html page:     {paths['html']}")

    items = [{"kind": "contact_sheet", "path": s} for s in sheets] + [{"kind": "html", "path": paths["html"]}]
    edge.emit(paths, items=items, human=human)

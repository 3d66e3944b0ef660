from pathlib import Path
from typing import Annotated

import typer

from .common import Edge, option, without_settings


@without_settings
def init(
    edge: Edge,
    folder: Annotated[Path, typer.Argument(help="Project folder (created if missing).", metavar="DIR")] = Path(),
    force: Annotated[bool, option("--force", help="Overwrite files that exist already.")] = False,
) -> None:
    """Start a project: an editable mirror.yaml, copies of the configs and the Firebase rules."""
    from ..project import init_project

    result = edge.guard(lambda: init_project(folder, force=force))
    items = [{"file": f, "action": "written"} for f in result.written] + [
        {"file": f, "action": "kept"} for f in result.kept
    ]

    def human() -> None:
        typer.echo(
            f"{len(result.written)} file(s) written, {len(result.kept)} kept in {folder}/\n"
            f"edit {folder / 'mirror.yaml'} and {folder / 'configs'}/; run mirror from {folder}/ "
            f"(or set MIRROR_SETTINGS={folder / 'mirror.yaml'})"
        )

    edge.emit(
        {"folder": str(folder), "written": len(result.written), "kept": len(result.kept)}, items=items, human=human
    )

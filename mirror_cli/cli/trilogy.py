from pathlib import Path
from typing import Annotated, Any

import typer

from .common import (
    DebugOpt,
    DryRunOpt,
    JsonOpt,
    MaxCostOpt,
    guarded,
    open_core,
    render_report,
    report_exit,
    with_settings,
)


@with_settings
def trilogy(
    flags: dict[str, Any],
    user: Annotated[str, typer.Option("--user", "-u", help="User id.")],
    photo: Annotated[
        Path | None,
        typer.Option("--photo", help="PNG/JPEG/WebP photo; metadata is stripped before it is sent or stored."),
    ] = None,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Original, Current and Future 2048 from a photo (or the persona's description) and personality."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.trilogy(user, photo, dry_run=dry_run, max_cost=max_cost)
        finally:
            core.close()

    result = guarded(call, as_json=as_json, debug=debug)
    render_report(result, as_json=as_json, title=f"trilogy for {user}")
    raise typer.Exit(report_exit(result))

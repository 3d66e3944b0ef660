from pathlib import Path
from typing import Annotated, Any

from .common import (
    DebugOpt,
    DryRunOpt,
    Edge,
    JsonOpt,
    MaxCostOpt,
    UserOpt,
    VerboseOpt,
    option,
    render_report,
    with_settings,
)


@with_settings
def trilogy(
    flags: dict[str, Any],
    user: UserOpt,
    photo: Annotated[
        Path | None,
        option(
            "--photo", metavar="FILE", help="PNG/JPEG/WebP photo; metadata is stripped before it is sent or stored."
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Original, Current and Future 2048 from a photo (or the persona's description) and personality."""
    from ..core import Mirror

    edge = Edge(flags, as_json, debug, verbose)

    notes: list[str] = []

    def call(core: Mirror) -> Any:
        result = core.trilogy(user, photo, dry_run=dry_run, max_cost=max_cost)
        if photo is not None and not core.provider.capabilities.uses_references:
            notes.append(
                f"the {core.settings.provider} renderer draws from the persona's description: "
                f"the photo was checked but not used (--provider openai uses it)."
            )
        return result

    result = edge.run(call, progress=f"trilogy {user}")
    render_report(result, edge, title=f"trilogy for {user}", notes=notes)

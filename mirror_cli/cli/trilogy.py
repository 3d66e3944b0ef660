from pathlib import Path
from typing import Annotated, Any

from .common import (
    DryRunOpt,
    Edge,
    MaxCostOpt,
    UserOpt,
    option,
    outputs,
    render_report,
    with_settings,
)


@with_settings
@outputs("verbose", "as_json", "debug")
def trilogy(
    edge: Edge,
    user: UserOpt,
    photo: Annotated[
        Path | None,
        option(
            "--photo", metavar="FILE", help="PNG/JPEG/WebP photo; metadata is stripped before it is sent or stored."
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
) -> None:
    """Original, Current and Future 2048 from a photo (or the persona's description) and personality."""
    from ..core import Mirror

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

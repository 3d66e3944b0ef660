from pathlib import Path
from typing import Annotated

from .common import DryRunOpt, Edge, option, with_settings
from .outputs import check_output_dir


@with_settings
def seed_fallbacks(
    edge: Edge,
    only: Annotated[
        list[str] | None, option("--only", metavar="STAGE", help="Only this stage or trilogy kind (repeatable).")
    ] = None,
    variants: Annotated[
        str | None,
        option("--variants", metavar="A,B", help="Comma-separated variant names from fallbacks.yaml (default: all)."),
    ] = None,
    out: Annotated[
        Path | None, option("--out", metavar="DIR", help="Write the set here (default: --fallback-dir).")
    ] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Pre-render a style's shared fallback set into your project's fallback_assets/<style>/ with a manifest."""
    if not dry_run:
        edge.guard(lambda: check_output_dir(out))  # before anything is rendered or bought
    result = edge.run(
        lambda core: core.seed_fallbacks(
            only=only, variants=variants.split(",") if variants else None, dry_run=dry_run, out=out
        ),
        progress="seed-fallbacks",
    )
    jobs = result.pop("jobs")

    def human() -> None:
        from .. import console
        from ..units import money

        console.info(
            f"{result['rendered']} rendered, {result['planned']} planned, {result['unchanged']} unchanged, "
            f"estimated {money(result['estimate_usd'])}"
            + (" (dry run)" if dry_run else "")
            + f"\nmanifest: {result['manifest']}\ncontact sheet: {result.get('contact_sheet')}"
        )

    edge.emit(result, jobs=jobs, human=human)

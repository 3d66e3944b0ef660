from typing import Annotated, Any

import typer

from .common import DebugOpt, DryRunOpt, JsonOpt, emit_json, guarded, open_core, with_settings


@with_settings
def seed_fallbacks(
    flags: dict[str, Any],
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Only this stage or trilogy kind (repeatable).")
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option("--variants", help="Comma-separated variant names from configs/fallbacks.yaml (default: all)."),
    ] = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Pre-render the shared fallback set of a style into fallback_assets/<style>/ with a manifest."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.seed_fallbacks(only=only, variants=variants.split(",") if variants else None, dry_run=dry_run)
        finally:
            core.close()

    result = guarded(call, as_json=as_json, debug=debug)
    if as_json:
        emit_json(result)
        return
    from .. import console

    console.info(
        f"{result['rendered']} rendered, {result['unchanged']} unchanged, "
        f"estimated ${result['estimate_usd']:.4f}"
        + (" (dry run)" if dry_run else "")
        + f"\nmanifest: {result['manifest']}\ncontact sheet: {result.get('contact_sheet')}"
    )

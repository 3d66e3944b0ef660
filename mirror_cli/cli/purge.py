from typing import Annotated, Any

import typer

from .common import DebugOpt, DryRunOpt, JsonOpt, emit_json, guarded, open_core, with_settings


@with_settings
def purge_cache(
    flags: dict[str, Any],
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Age such as 30d, 12h (default: the cache TTL).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's entries.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every entry, whatever its age.")] = False,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Delete expired cache entries and their images; timeline avatars and fallbacks are never deleted."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.purge_cache(older_than=older_than, user=user, everything=everything, dry_run=dry_run)
        finally:
            core.close()

    report = guarded(call, as_json=as_json, debug=debug)
    if as_json:
        emit_json(report.to_dict())
        return
    from .. import console

    verb = "would free" if dry_run else "freed"
    console.info(
        f"examined {report.examined} cache entries; removed {report.entries_removed} "
        f"({report.images_removed} images, {verb} {report.bytes_freed / 1024:.1f} KiB); "
        f"{report.kept_in_timeline} avatars kept because a timeline still shows them"
        + (" [dry run: nothing deleted]" if dry_run else "")
    )

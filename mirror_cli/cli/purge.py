from typing import Annotated

from .common import DryRunOpt, Edge, option, with_store_settings


@with_store_settings
def purge_cache(
    edge: Edge,
    older_than: Annotated[
        str | None, option("--older-than", metavar="AGE", help="Age such as 30d, 12h (default: the cache TTL).")
    ] = None,
    user: Annotated[str | None, option("--user", "-u", metavar="USER", help="Only this user's entries.")] = None,
    everything: Annotated[bool, option("--all", help="Every entry, whatever its age.")] = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Delete expired cache entries and their images; timeline avatars and fallbacks are never deleted."""
    report = edge.run(
        lambda core: core.purge_cache(older_than=older_than, user=user, everything=everything, dry_run=dry_run)
    )

    def human() -> None:
        from .. import console

        verb = "would free" if dry_run else "freed"
        console.info(
            f"examined {report.examined} cache entries; removed {report.entries_removed} "
            f"({report.images_removed} images, {verb} {report.bytes_freed / 1024:.1f} KiB); "
            f"{report.kept_in_timeline} avatars kept because a timeline still shows them"
            + (" (dry run: nothing deleted)" if dry_run else "")
        )

    edge.emit({**report.to_dict(), "dry_run": dry_run}, items=[], human=human)

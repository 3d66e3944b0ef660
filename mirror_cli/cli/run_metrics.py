"""A nightly run's metrics for monitoring (evolve --metrics-file / --pushgateway)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def export_run_metrics(report: Any, metrics_file: Path | None, pushgateway: str | None, shard: str | None) -> None:
    """Write and/or push the run's figures; a failed push is a warning in the report, not an error."""
    from ..telemetry import export

    if metrics_file is not None:
        export.write_metrics_file(report, metrics_file)
    if pushgateway:
        # one group per shard: shards of one night never overwrite each other's figures
        grouping = {"shard": (shard or "all").replace("/", "-of-")}
        problem = export.push(report, pushgateway, grouping)
        if problem is not None:
            from .. import console

            console.labelled(
                "warning", f"the run's metrics were not pushed to the Pushgateway: {problem}", "yellow", stderr=True
            )

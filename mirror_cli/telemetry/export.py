"""A finished run's figures for monitoring: OpenMetrics text in a file (a sidecar or node
exporter's textfile collector reads it) and/or a push to a Prometheus Pushgateway (the
convention for batch jobs). Written atomically; a push that fails is reported, never fatal."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..pipeline import RunReport

JOB = "mirror_nightly"


def _registry(report: RunReport) -> CollectorRegistry:
    try:
        from .metrics import run_registry
    except ImportError:
        raise UsageError(
            "Run metrics need prometheus-client, which is not installed.",
            "Install the telemetry extra: pip install 'mirror-realm-avatars[telemetry]'.",
        ) from None
    return run_registry(report.summary(), report, [a.to_dict() for a in report.alerts])


def check_metrics_file(path: Path) -> None:
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} exists and is not a file.", "Pass a file path for --metrics-file.")
    if not path.parent.is_dir():
        raise UsageError(f"The folder of {path} does not exist.", "Create it, or pass a path in an existing folder.")


def write_metrics_file(report: RunReport, path: Path) -> None:
    from prometheus_client.openmetrics.exposition import generate_latest

    body: bytes = generate_latest(_registry(report))  # type: ignore[no-untyped-call]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # a reader never sees half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def push(report: RunReport, url: str, grouping: dict[str, str], timeout_s: float = 10.0) -> str | None:
    """Push to a Pushgateway (replacing this job's group); None when it took it, else why not."""
    from prometheus_client import push_to_gateway

    try:
        push_to_gateway(url, job=JOB, registry=_registry(report), grouping_key=grouping, timeout=timeout_s)
    except Exception as exc:  # the run is done: a monitoring hiccup never changes its outcome
        from ..errors import redact

        return redact(f"{type(exc).__name__}: {exc}")
    return None

from typing import Any

import typer

from ..errors import ExitCode, MirrorError
from .common import Edge, with_settings


@with_settings
def doctor(edge: Edge) -> None:
    """Check the settings, configs, store, key, model and fallbacks; report each and say what to fix.

    Exits non-zero (3) at the end when any check failed."""

    def call() -> list[dict[str, Any]]:
        try:
            core = edge.open()
        except MirrorError as err:  # settings or configs: nothing else can be checked
            return [{"check": "configs", "status": "fail", "detail": err.message, "fix": err.hint}]
        try:
            return core.doctor()
        finally:
            core.close()

    checks = edge.guard(call)
    bad = [c for c in checks if c["status"] == "fail"]
    summary = {
        "ok": not bad,
        "failed": len(bad),
        "warnings": sum(c["status"] == "warn" for c in checks),
        "checks": len(checks),
    }

    rows = [(c["check"], c["status"], c["detail"], c.get("fix") or "") for c in checks]
    edge.emit_table(summary, ("mirror doctor", ["check", "status", "detail", "fix"], rows), items=checks)
    raise typer.Exit(int(ExitCode.CONFIG) if bad else 0)

from typing import Any

import typer

from ..errors import ExitCode
from .common import DebugOpt, JsonOpt, emit_json, guarded, open_core, with_settings


@with_settings
def doctor(flags: dict[str, Any], as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Check configs, the store, the key, the model and its shutdown date; say what to fix."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.doctor()
        finally:
            core.close()

    checks = guarded(call, as_json=as_json, debug=debug)
    bad = [c for c in checks if c["status"] == "fail"]
    if as_json:
        emit_json({"ok": not bad, "checks": checks})
    else:
        from .. import console

        console.table(
            "mirror doctor",
            ["check", "status", "detail", "fix"],
            [(c["check"], c["status"], c["detail"], c.get("fix") or "") for c in checks],
        )
    raise typer.Exit(int(ExitCode.CONFIG) if bad else 0)

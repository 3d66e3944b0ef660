"""mirror canary: try a model, style or renderer change on a fixed sample of real users first."""

from pathlib import Path
from typing import Annotated, Any

from .common import Edge, option, with_settings


@with_settings
def canary(
    edge: Edge,
    renderer_version: Annotated[
        str | None,
        option(
            "--renderer-version",
            metavar="V",
            help="The renderer version the candidate must be (install it in this environment first).",
        ),
    ] = None,
    sample_size: Annotated[
        int, option("--sample", metavar="N", min=1, max=200, help="How many users to re-render.")
    ] = 8,
    sheet: Annotated[
        Path | None, option("--sheet", metavar="FILE.png", help="Where to write the side-by-side review sheet.")
    ] = None,
) -> None:
    """Re-render a fixed sample of users' latest stages with the candidate (--model, --style,
    --provider...), score each against the avatar they have now (same face, quality gate), write a
    review sheet and record the result: the nightly run refuses the change unless it passed."""

    def call(core: Any) -> dict[str, Any]:
        from ..canary import run_canary
        from ..errors import UsageError

        installed = core.provider.renderer_version
        if renderer_version is not None and renderer_version != installed:
            raise UsageError(
                f"The renderer here is {installed}, not {renderer_version}.",
                "Install the candidate renderer in this environment (or a copy of it), then run the canary there.",
            )
        result: dict[str, Any] = run_canary(core, size=sample_size, sheet=sheet).to_dict()
        return result

    result = edge.run(call, progress=None)
    rows = result.pop("rows")

    def human() -> None:
        from .. import console

        console.table(
            "canary",
            ["user", "stage", "face distance", "gate", "note"],
            [
                (
                    r["user_id"],
                    r["stage"],
                    "no face" if r["distance"] is None else f"{r['distance']:.3f}",
                    "ok" if r["gate_ok"] else "failed",
                    "unchanged request" if r["reused"] else r["detail"],
                )
                for r in rows
            ],
        )
        verdict = "PASS" if result["passed"] else "BLOCK: the nightly run will refuse this change"
        console.info(
            f"median drift {result['median_drift']} (threshold {result['threshold']}): {verdict}\n"
            f"sheet: {result['sheet']}  run: {result['run_id']}  paid ${result['paid_usd']:.4f}"
        )

    edge.emit(result, items=rows, human=human)

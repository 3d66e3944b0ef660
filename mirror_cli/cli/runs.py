import dataclasses
from typing import Annotated, Any

import typer

from .common import (
    Edge,
    MirrorCommand,
    MirrorSubGroup,
    option,
    outputs,
    render_report,
    with_settings,
    with_store_settings,
)

app = typer.Typer(
    cls=MirrorSubGroup,
    help="List batch runs and their jobs; resume with --resume RUN_ID on the same command.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
@with_store_settings
def runs(
    edge: Edge,
    ctx: typer.Context,
    limit: Annotated[int, option("--limit", metavar="N", min=1, help="How many recent runs.")] = 20,
) -> None:
    """Recent runs with their state and counts."""
    if ctx.invoked_subcommand:
        return
    found = edge.run(lambda core: core.runs(limit))
    rows: list[dict[str, Any]] = [
        {
            "id": r.id,
            "command": r.command,
            "created_at": r.created_at.isoformat(),
            "state": r.state,
            "counts": r.counts,
        }
        for r in found
    ]

    table = [
        (
            r["id"],
            r["command"],
            r["created_at"][:19],
            r["state"],
            ", ".join(f"{k} {v}" for k, v in r["counts"].items() if v),
        )
        for r in rows
    ]
    edge.emit_table(
        {"runs": len(rows), "limit": limit},
        ("runs", ["id", "command", "created", "state", "counts"], table),
        items=rows,
    )


@app.command("show", cls=MirrorCommand)
@with_store_settings
def show(
    edge: Edge,
    run_id: Annotated[str, typer.Argument(help="Run id from 'mirror runs'.", metavar="RUN_ID")],
) -> None:
    """One run's jobs and their states."""
    run, jobs = edge.run(lambda core: core.run_detail(run_id))
    rows = [{"job": j.job_id, "state": j.state, "avatar_id": j.avatar_id, "detail": j.detail} for j in jobs]

    edge.emit_table(
        {"id": run.id, "command": run.command, "state": run.state, "counts": run.counts},
        (
            f"run {run.id} ({run.state})",
            ["job", "state", "avatar", "detail"],
            [(r["job"], r["state"], r["avatar_id"], r["detail"]) for r in rows],
        ),
        jobs=rows,
    )


@app.command("poll", cls=MirrorCommand)
@with_settings
@outputs("verbose", "as_json", "debug")
def poll(
    edge: Edge,
    run_id: Annotated[str, typer.Argument(help="A run submitted with --via batch-api.", metavar="RUN_ID")],
    wait: Annotated[bool, option("--wait", help="Keep polling until every batch has finished.")] = False,
    resubmit: Annotated[bool, option("--resubmit", help="Submit failed and waiting jobs again.")] = False,
    poll_s: Annotated[
        float, option("--every", metavar="SECONDS", min=0.01, help="Seconds between polls with --wait.")
    ] = 30.0,
) -> None:
    """Collect a Batch API run's results into the store (batch price) and report them."""
    edge = dataclasses.replace(edge, via="batch-api")
    result = edge.run(lambda core: core.poll(run_id, wait=wait, resubmit=resubmit, poll_s=poll_s), progress="poll")
    render_report(result, edge, title=f"run {run_id}: batch results", batch=True)

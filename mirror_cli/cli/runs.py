from typing import Annotated, Any

import typer

from .common import DebugOpt, JsonOpt, emit_json, guarded, open_core, with_settings

app = typer.Typer(
    help="List batch runs and their jobs; resume with --resume RUN_ID on the same command.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
@with_settings
def runs(
    flags: dict[str, Any],
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many recent runs.")] = 20,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Recent runs with their state and counts."""
    if ctx.invoked_subcommand:
        return

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.runs(limit)
        finally:
            core.close()

    items = guarded(call, as_json=as_json, debug=debug)
    rows = [
        {
            "id": r.id,
            "command": r.command,
            "created_at": r.created_at.isoformat(),
            "state": r.state,
            "counts": r.counts,
        }
        for r in items
    ]
    if as_json:
        emit_json(rows)
        return
    from .. import console

    console.table(
        "runs",
        ["id", "command", "created", "state", "counts"],
        [
            (
                r["id"],
                r["command"],
                r["created_at"][:19],
                r["state"],
                ", ".join(f"{k} {v}" for k, v in r["counts"].items() if v),
            )
            for r in rows
        ],
    )


@app.command("show")
@with_settings
def show(
    flags: dict[str, Any],
    run_id: Annotated[str, typer.Argument(help="Run id from 'mirror runs'.")],
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One run's jobs and their states."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.run_detail(run_id)
        finally:
            core.close()

    run, jobs = guarded(call, as_json=as_json, debug=debug)
    rows = [{"job": j.job_id, "state": j.state, "avatar_id": j.avatar_id, "detail": j.detail} for j in jobs]
    if as_json:
        emit_json({"id": run.id, "state": run.state, "counts": run.counts, "jobs": rows})
        return
    from .. import console

    console.table(
        f"run {run.id} ({run.state})",
        ["job", "state", "avatar", "detail"],
        [(r["job"], r["state"], r["avatar_id"], r["detail"]) for r in rows],
    )


@app.command("poll")
@with_settings
def poll(
    flags: dict[str, Any],
    run_id: Annotated[str, typer.Argument(help="A run submitted with --via batch-api.")],
    wait: Annotated[bool, typer.Option("--wait", help="Keep polling until every batch has finished.")] = False,
    resubmit: Annotated[bool, typer.Option("--resubmit", help="Submit failed and waiting jobs again.")] = False,
    poll_s: Annotated[float, typer.Option("--every", min=0.01, help="Seconds between polls with --wait.")] = 30.0,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Collect a Batch API run's results into the store (batch price) and report them."""
    from .common import render_report, report_exit

    def call() -> Any:
        core = open_core({**flags, "provider": "openai-batch"})
        try:
            return core.poll(run_id, wait=wait, resubmit=resubmit, poll_s=poll_s)
        finally:
            core.close()

    result = guarded(call, as_json=as_json, debug=debug)
    render_report(result, as_json=as_json, title=f"run {run_id}: batch results")
    raise typer.Exit(report_exit(result))

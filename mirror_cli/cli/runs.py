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

from typing import Annotated, Any

import typer

from .common import (
    DebugOpt,
    DryRunOpt,
    JsonOpt,
    MaxCostOpt,
    ReportOpt,
    ResumeOpt,
    ShardOpt,
    ViaOpt,
    guarded,
    open_core,
    render_report,
    report_exit,
    with_settings,
)


@with_settings
def evolve(
    flags: dict[str, Any],
    user: Annotated[str | None, typer.Option("--user", "-u", help="User id.")] = None,
    due: Annotated[bool, typer.Option("--due", help="Every user who crossed a milestone (the nightly run).")] = False,
    to: Annotated[str | None, typer.Option("--to", help="Force this stage for --user.")] = None,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    shard: ShardOpt = None,
    resume: ResumeOpt = None,
    report: ReportOpt = None,
    via: ViaOpt = "sync",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Produce the next stage when a user's progress crossed a milestone since their latest avatar."""
    from .. import console
    from ..core import Shard

    def call() -> Any:
        core = open_core(flags, via)
        # a nightly run learns its jobs from the due index: the bar is sized from the plan
        with console.progress(None if due else 1, "evolve", enabled=not as_json) as advance:
            core.on_progress = advance
            core.on_planned = advance.planned
            try:
                return core.evolve(
                    user,
                    due=due,
                    to=to,
                    dry_run=dry_run,
                    max_cost=max_cost,
                    shard=Shard.parse(shard) if due else None,
                    resume=resume,
                )
            finally:
                core.close()

    result = guarded(call, as_json=as_json, debug=debug)
    render_report(result, as_json=as_json, title="evolve", report_file=report)
    raise typer.Exit(report_exit(result))

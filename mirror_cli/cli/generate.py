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
def generate(
    flags: dict[str, Any],
    user: Annotated[list[str] | None, typer.Option("--user", "-u", help="User id (repeatable).")] = None,
    stage: Annotated[
        str,
        typer.Option("--stage", "-s", help="Stage or trilogy kind (camelCase, snake_case or kebab-case)."),
    ] = "newReflection",
    all_users: Annotated[bool, typer.Option("--all", help="Every known user (a resumable run).")] = False,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    shard: ShardOpt = None,
    resume: ResumeOpt = None,
    report: ReportOpt = None,
    via: ViaOpt = "sync",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Generate one stage (or trilogy kind) for a user, several users, or --all."""
    from .. import console
    from ..core import Shard
    from ..errors import UsageError

    def call() -> Any:
        if bool(user) == all_users:
            raise UsageError("Say who to generate for.", "Pass --user U (repeatable) or --all, not both.")
        core = open_core(flags, via)
        with console.progress(
            None if all_users else len(user or []), f"generate {stage}", enabled=not as_json
        ) as advance:
            core.on_progress = advance
            core.on_planned = advance.planned
            try:
                return core.generate(
                    None if all_users else user,
                    stage,
                    dry_run=dry_run,
                    max_cost=max_cost,
                    shard=Shard.parse(shard) if all_users else None,
                    resume=resume,
                )
            finally:
                core.close()

    result = guarded(call, as_json=as_json, debug=debug)
    render_report(result, as_json=as_json, title=f"generate {stage}", report_file=report)
    raise typer.Exit(report_exit(result))

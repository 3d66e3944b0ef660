from typing import Annotated, Any

from .common import (
    DebugOpt,
    DryRunOpt,
    Edge,
    JsonOpt,
    MaxCostOpt,
    ReportOpt,
    ResumeOpt,
    ShardOpt,
    VerboseOpt,
    ViaOpt,
    option,
    render_report,
    with_settings,
)
from .outputs import check_output_file


@with_settings
def evolve(
    flags: dict[str, Any],
    user: Annotated[str | None, option("--user", "-u", metavar="USER", help="User id.")] = None,
    due: Annotated[
        bool,
        option(
            "--due",
            help="The hourly nightly tick: every user who crossed a milestone and whose local time is "
            "inside their nightly window (--now plans as of another instant).",
        ),
    ] = False,
    to: Annotated[str | None, option("--to", metavar="STAGE", help="Force this stage for --user.")] = None,
    any_hour: Annotated[
        bool,
        option(
            "--any-hour",
            help="With --due: every due user now, whatever their local time (a manual catch-up); "
            "by default a tick serves the users inside their nightly window (limits.yaml nightly).",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    shard: ShardOpt = None,
    resume: ResumeOpt = None,
    report: ReportOpt = None,
    via: ViaOpt = "sync",
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Produce the next stage when a user's progress crossed a milestone since their latest avatar."""
    from ..core import Mirror, Shard

    edge = Edge(flags, as_json, debug, verbose, via)

    def call(core: Mirror) -> Any:
        return core.evolve(
            user,
            due=due,
            to=to,
            dry_run=dry_run,
            max_cost=max_cost,
            shard=Shard.parse(shard) if due else None,
            resume=resume,
            any_hour=any_hour,
        )

    edge.guard(lambda: check_output_file(report))  # before anything is spent
    result = edge.run(call, progress="evolve")
    render_report(result, edge, title="evolve", batch=due, report_file=report)

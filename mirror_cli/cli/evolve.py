from pathlib import Path
from typing import Annotated, Any

from .common import (
    DryRunOpt,
    Edge,
    MaxCostOpt,
    ResumeOpt,
    ShardOpt,
    option,
    outputs,
    render_report,
    with_settings,
)

DueOpt = Annotated[
    bool,
    option(
        "--due",
        help="The hourly nightly tick: every user who crossed a milestone and whose local time is "
        "inside their nightly window (--now plans as of another instant).",
    ),
]

EnqueueOpt = Annotated[
    bool,
    option(
        "--enqueue",
        help="With --due: publish the due jobs to the job queue (settings 'queue') for `mirror worker` "
        "instead of running them here.",
    ),
]

AnyHourOpt = Annotated[
    bool,
    option(
        "--any-hour",
        help="With --due: every due user now, whatever their local time (a manual catch-up); "
        "by default a tick serves the users inside their nightly window (limits.yaml nightly).",
    ),
]

MetricsFileOpt = Annotated[
    Path | None,
    option("--metrics-file", metavar="FILE", help="Also write the run's metrics here (OpenMetrics text)."),
]

PushgatewayOpt = Annotated[
    str | None,
    option("--pushgateway", metavar="URL", help="Also push the run's metrics to this Prometheus Pushgateway."),
]

OverrideCanaryOpt = Annotated[
    bool,
    option(
        "--override-canary",
        help="With --due: go ahead although the model, style or renderer changed without a passing "
        "'mirror canary' (users' faces may change overnight).",
    ),
]


@with_settings
@outputs("report", "via", "verbose", "as_json", "debug")
def evolve(
    edge: Edge,
    user: Annotated[str | None, option("--user", "-u", metavar="USER", help="User id.")] = None,
    due: DueOpt = False,
    to: Annotated[str | None, option("--to", metavar="STAGE", help="Force this stage for --user.")] = None,
    enqueue: EnqueueOpt = False,
    any_hour: AnyHourOpt = False,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    shard: ShardOpt = None,
    resume: ResumeOpt = None,
    metrics_file: MetricsFileOpt = None,
    pushgateway: PushgatewayOpt = None,
    override_canary: OverrideCanaryOpt = False,
) -> None:
    """Produce the next stage when a user's progress crossed a milestone since their latest avatar."""
    from ..core import Mirror, Shard

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
            override_canary=override_canary,
        )

    if enqueue:
        _enqueue(edge, due, dry_run, shard, any_hour)
        return
    if metrics_file is not None:
        from ..telemetry.export import check_metrics_file

        edge.guard(lambda: check_metrics_file(metrics_file))
    result = edge.run(call, progress="evolve")
    if (metrics_file or pushgateway) and not dry_run:
        from .run_metrics import export_run_metrics

        edge.guard(lambda: export_run_metrics(result, metrics_file, pushgateway, shard))
    render_report(result, edge, title="evolve", batch=due)


def _enqueue(edge: Edge, with_due: bool, dry_run: bool, shard: str | None, any_hour: bool) -> None:
    """--due --enqueue: publish this tick's due jobs for `mirror worker` instead of running them."""
    from ..core import Shard

    if not with_due:
        edge.usage_error("--enqueue goes with --due.", "Run: mirror evolve --due --enqueue.")
    if dry_run:
        edge.usage_error(
            "--enqueue publishes jobs, and a dry run publishes nothing.",
            "See what the tick would plan with: mirror evolve --due --dry-run (without --enqueue).",
        )
    published = edge.run(lambda core: core.enqueue_due(Shard.parse(shard), any_hour=any_hour))

    def told() -> None:
        from .. import console

        console.info(f"evolve: {published} due job(s) published to the queue for `mirror worker`.")

    edge.emit({"published": published}, items=[], human=told)

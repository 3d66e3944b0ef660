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


@with_settings
@outputs("report", "via", "verbose", "as_json", "debug")
def generate(
    edge: Edge,
    user: Annotated[list[str] | None, option("--user", "-u", metavar="USER", help="User id (repeatable).")] = None,
    stage: Annotated[
        str,
        option("--stage", "-s", metavar="STAGE", help="Stage or trilogy kind (camelCase, snake_case or kebab-case)."),
    ] = "newReflection",
    all_users: Annotated[bool, option("--all", help="Every user in the store (a resumable run).")] = False,
    regenerate: Annotated[
        bool,
        option(
            "--regenerate",
            help="Pay for one more image of a stage the user already has (limits.regenerations_per_target); "
            "without it an existing stage is served as it is.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    shard: ShardOpt = None,
    resume: ResumeOpt = None,
) -> None:
    """Generate one stage (or trilogy kind) for a user, several users, or --all."""
    from ..core import Mirror, Shard

    if bool(user) == all_users:
        edge.usage_error("Say who to generate for.", "Pass --user U (repeatable) or --all.")

    def call(core: Mirror) -> Any:
        return core.generate(
            None if all_users else user,
            stage,
            dry_run=dry_run,
            max_cost=max_cost,
            shard=Shard.parse(shard) if all_users else None,
            resume=resume,
            regenerate=regenerate,
        )

    result = edge.run(call, progress=f"generate {stage}")
    render_report(result, edge, title=f"generate {stage}", batch=all_users)

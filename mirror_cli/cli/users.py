from pathlib import Path
from typing import Annotated, Any

import typer

from .common import DebugOpt, JsonOpt, emit_json, guarded, open_core, with_settings

app = typer.Typer(help="Users known to the store and the persona configs.", no_args_is_help=True)


@app.command("list")
@with_settings
def list_users(flags: dict[str, Any], as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Every user id with their active days and latest stage."""

    def call() -> Any:
        core = open_core(flags)
        try:
            out = []
            for uid in core.user_ids():
                p = core.persona(uid)
                out.append(
                    {
                        "user": uid,
                        "name": p.name,
                        "active_days": p.progress.active_days,
                        "stage_reached": core.configs.stages.stage_for_days(p.progress.active_days),
                        "latest_avatar_stage": core.latest_stage(uid),
                    }
                )
            return out
        finally:
            core.close()

    rows = guarded(call, as_json=as_json, debug=debug)
    if as_json:
        emit_json(rows)
        return
    from .. import console

    console.table(
        "users",
        ["user", "name", "active days", "stage reached", "latest avatar"],
        [tuple(r.values()) for r in rows],
    )


@app.command("import")
@with_settings
def import_users(
    flags: dict[str, Any],
    files: Annotated[list[Path], typer.Argument(help="Persona YAML files.")],
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Add or update users in the store from persona YAML files."""
    from ..config import load_yaml_model
    from ..models import Persona

    def call() -> Any:
        personas = [load_yaml_model(f, Persona) for f in files]
        core = open_core(flags)
        try:
            return core.import_users(personas)
        finally:
            core.close()

    n = guarded(call, as_json=as_json, debug=debug)
    emit_json({"imported": n}) if as_json else typer.echo(f"imported {n} user(s)")


@app.command("progress")
@with_settings
def set_progress(
    flags: dict[str, Any],
    user: Annotated[str, typer.Option("--user", "-u", help="User id.")],
    active_days: Annotated[int | None, typer.Option("--active-days", min=0)] = None,
    goals: Annotated[int | None, typer.Option("--goals", min=0, help="Goals completed.")] = None,
    achievement: Annotated[str | None, typer.Option("--achievement", help="Major achievement (free text).")] = None,
    area: Annotated[list[str] | None, typer.Option("--area", help="Achievement area (repeatable).")] = None,
    trait: Annotated[list[str] | None, typer.Option("--trait", help="Discovered trait (repeatable).")] = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Record a user's progress (what the app writes to users/{uid}.progress)."""

    def call() -> Any:
        core = open_core(flags)
        try:
            current = core.persona(user).progress
            updates: dict[str, Any] = {}
            if active_days is not None:
                updates["active_days"] = active_days
            if goals is not None:
                updates["goals_completed"] = goals
            if achievement is not None:
                updates["major_achievement"] = achievement or None
            if area is not None:
                updates["achievement_areas"] = area
            if trait is not None:
                updates["discovered_traits"] = trait
            from ..models import Progress

            progress = Progress.model_validate({**current.model_dump(), **updates})
            return core.set_progress(user, progress).progress
        finally:
            core.close()

    progress = guarded(call, as_json=as_json, debug=debug)
    data = progress.model_dump(mode="json")
    emit_json(data) if as_json else typer.echo(f"{user}: {data}")

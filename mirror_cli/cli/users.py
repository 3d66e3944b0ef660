from pathlib import Path
from typing import Annotated, Any

import typer

from .common import Edge, MirrorCommand, MirrorSubGroup, UserOpt, option, with_store_settings

app = typer.Typer(
    cls=MirrorSubGroup, help="The users of the store: list, import, record progress.", no_args_is_help=True
)


@app.command("list", cls=MirrorCommand)
@with_store_settings
def list_users(edge: Edge) -> None:
    """Every user id in the store with their active days and latest stage."""

    def call(core: Any) -> list[dict[str, Any]]:
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
                    "timezone": p.timezone or f"{core.configs.limits.nightly.timezone} (default)",
                }
            )
        return out

    rows = edge.run(call)

    columns = ["user", "name", "active days", "stage reached", "latest avatar", "time zone"]
    empty = "no users yet: 'mirror users import FILE.yaml' or 'mirror users import --examples'"
    edge.emit_table(
        {"users": len(rows)}, ("users", columns, [tuple(r.values()) for r in rows]), items=rows, empty=empty
    )


@app.command("import", cls=MirrorCommand)
@with_store_settings
def import_users(
    edge: Edge,
    files: Annotated[
        list[Path] | None, typer.Argument(help="Persona YAML files (people/*.yaml).", metavar="FILE...")
    ] = None,
    examples: Annotated[
        bool, option("--examples", help="The example personas shipped with mirror (demo data).")
    ] = False,
) -> None:
    """Add or update users in the store from persona YAML files (or the examples)."""
    from ..config import example_personas, load_personas

    if not files and not examples:
        edge.usage_error(
            "Nothing to import.",
            "Name persona YAML files (or folders), or pass --examples for the shipped example personas.",
        )

    def call(core: Any) -> list[str]:
        personas = {**(example_personas() if examples else {}), **(load_personas(files) if files else {})}
        return list(core.import_users(list(personas.values())))

    # Read the files before the store is opened: a bad file changes nothing.
    edge.guard(lambda: load_personas(files) if files else None)
    ids = edge.run(call)
    edge.emit_line(
        {"imported": len(ids), "examples": examples}, f"imported {len(ids)} user(s): {', '.join(ids)}", items=ids
    )


@app.command("progress", cls=MirrorCommand)
@with_store_settings
def set_progress(
    edge: Edge,
    user: UserOpt,
    active_days: Annotated[int | None, option("--active-days", metavar="N", min=0, help="Active days.")] = None,
    goals: Annotated[int | None, option("--goals", metavar="N", min=0, help="Goals completed.")] = None,
    achievement: Annotated[
        str | None, option("--achievement", metavar="TEXT", help="Major achievement (free text).")
    ] = None,
    area: Annotated[list[str] | None, option("--area", metavar="AREA", help="Achievement area (repeatable).")] = None,
    trait: Annotated[
        list[str] | None, option("--trait", metavar="TRAIT", help="Discovered trait (repeatable).")
    ] = None,
) -> None:
    """Record a user's progress (what the app writes to users/{uid}.progress)."""
    from ..models import Progress

    def call(core: Any) -> Any:
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
        progress = Progress.model_validate({**current.model_dump(), **updates})
        return core.set_progress(user, progress).progress

    progress = edge.run(call)
    data = progress.model_dump(mode="json")
    edge.emit_line({"user": user, **data}, f"{user}: {data}")


@app.command("set-timezone", cls=MirrorCommand)
@with_store_settings
def set_timezone(
    edge: Edge,
    user: UserOpt,
    tz: Annotated[
        str | None, option("--tz", metavar="ZONE", help="An IANA time zone, e.g. Asia/Tokyo or America/St_Johns.")
    ] = None,
    default: Annotated[
        bool, option("--default", help="Clear the user's zone: the configured default (limits.yaml nightly) applies.")
    ] = False,
) -> None:
    """Set the time zone whose night the user's avatars are made in (what the app writes to
    users/{uid}.timezone); the user's next nightly window follows it at once."""

    if (tz is None) == (not default):
        edge.usage_error(
            "Pass exactly one of --tz ZONE or --default.", "e.g. mirror users set-timezone --user u1 --tz Asia/Tokyo"
        )
    if tz is not None:
        from ..nightly import check_zone

        edge.guard(lambda: check_zone(tz, "--tz"))  # before the store is opened: nothing changes

    def call(core: Any) -> dict[str, Any]:
        from ..nightly import from_epoch

        persona = core.set_timezone(user, tz)
        tick = core.nightly_tick()
        zone = tick.zone_of(persona)
        opens = tick.window.next_open(core.now(), zone)
        return {
            "user": user,
            "timezone": persona.timezone,
            "zone_used": str(zone.key),
            "window": tick.window.label,
            "next_window_opens": from_epoch(int(opens.timestamp())).isoformat(),
            "next_window_opens_local": opens.astimezone(zone).isoformat(),
        }

    out = edge.run(call)
    edge.emit_line(
        out,
        f"{user}: time zone {out['zone_used']}{'' if out['timezone'] else ' (default)'}; "
        f"next nightly window {out['window']} opens {out['next_window_opens_local']} "
        f"({out['next_window_opens']})",
    )


@app.command("consent", cls=MirrorCommand)
@with_store_settings
def consent(
    edge: Edge,
    user: UserOpt,
    photo: Annotated[bool, option("--photo", help="Consent to the use of their photo (the trilogy).")] = False,
    generation: Annotated[bool, option("--generation", help="Consent to avatar generation itself.")] = False,
    withdraw: Annotated[bool, option("--withdraw", help="Record that the user withdrew this consent.")] = False,
    terms: Annotated[str, option("--terms", metavar="VERSION", help="The version of the terms agreed to.")] = "v1",
    by: Annotated[
        str | None, option("--by", metavar="NAME", help="Who records it (default: the operator's login name).")
    ] = None,
) -> None:
    """Record that a user agreed to (or, with --withdraw, no longer agrees to) the use of their
    photo or avatar generation, with the terms' version; a photo is refused without it."""
    import getpass

    if photo == generation:
        edge.usage_error(
            "Pass exactly one of --photo or --generation.", "e.g. mirror users consent --user u1 --photo --terms v1"
        )
    scope = "photo" if photo else "generation"
    who = f"operator:{(by or getpass.getuser())[:60]}"

    def call(core: Any) -> dict[str, Any]:
        change = core.record_consent(user, scope, granted=not withdraw, terms_version=terms, recorded_by=who)
        record = change.persona.consent[scope].model_dump(mode="json")
        return {"user": user, "scope": scope, **record, "deleted": change.deleted}

    out = edge.run(call)
    state = "withdrawn" if withdraw else "granted"
    gone = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in out["deleted"].items())
    edge.emit_line(
        out,
        f"{user}: {scope} consent {state} (terms {terms}, by {who}, at {out['at']})"
        + (f"; deleted what was kept of the photo: {gone}" if gone else ""),
    )


@app.command("delete", cls=MirrorCommand)
@with_store_settings
def delete(
    edge: Edge,
    user: UserOpt,
    yes: Annotated[bool, option("--yes", help="Confirm: erase the user for good (it cannot be undone).")] = False,
) -> None:
    """Erase a user for good: profile, avatars and their images, cache entries, claims, jobs,
    spool files and local files. Their spend stays in the ledger under a pseudonym, so usage
    totals do not change; the user id can never be stored again. Safe to run again."""
    from ..models import validate_user_id

    edge.guard(lambda: validate_user_id(user))
    if not yes:
        edge.usage_error(
            f"Erasing user {user!r} cannot be undone: nothing was changed.",
            f"Run again with --yes to confirm: mirror users delete --user {user} --yes",
        )
    out = edge.run(lambda core: core.erase_user(user))
    total = sum(v for k, v in out["removed"].items() if k != "ledger_events_pseudonymised")
    edge.emit_line(
        out,
        f"{user}: erased ({total} records and files removed; "
        f"{out['removed']['ledger_events_pseudonymised']} ledger events kept as {out['pseudonym']})"
        + (" — it had already been erased" if out["already_erased"] else ""),
    )

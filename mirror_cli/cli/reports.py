from typing import Annotated, Any

import typer

from .common import Edge, MirrorCommand, MirrorSubGroup, option, with_store_settings

app = typer.Typer(
    cls=MirrorSubGroup,
    help="Reports on avatars (by users in the app, or by the moderation check): list, show, resolve.",
    no_args_is_help=True,
)

ID_HELP = "The report's id (from mirror reports list)."


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "user": r.user_id,
        "avatar": r.avatar_id,
        "reason": r.reason,
        "status": r.status,
        "filed_by": r.filed_by,
        "created_at": r.created_at.isoformat(),
        "resolved_by": r.resolved_by,
        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
    }


def _when(iso: str) -> str:
    """An ISO instant as a table shows it: to the minute, UTC."""
    return iso[:16].replace("T", " ")


@app.command("list", cls=MirrorCommand)
@with_store_settings
def list_reports(
    edge: Edge,
    status: Annotated[
        str | None, option("--status", metavar="STATUS", help="open, restored or removed (default: all).")
    ] = None,
    user: Annotated[str | None, option("--user", "-u", metavar="USER", help="One user's reports only.")] = None,
    limit: Annotated[int, option("--limit", metavar="N", help="At most N reports, newest first.")] = 100,
) -> None:
    """Reports, newest first; an open report's avatar is hidden until it is resolved."""
    rows = [_row(r) for r in edge.run(lambda core: core.list_reports(status, user, limit))]

    table = [
        (r["id"], r["user"], r["avatar"], r["reason"], r["status"], r["filed_by"], _when(r["created_at"])) for r in rows
    ]
    title = "reports" + (f" ({status})" if status else "")
    columns = ["id", "user", "avatar", "reason", "status", "filed by", "filed"]
    summary = {"reports": len(rows), "status": status, "user": user}
    edge.emit_table(summary, (title, columns, table), items=rows, empty="no reports")


@app.command("show", cls=MirrorCommand)
@with_store_settings
def show(
    edge: Edge,
    report_id: Annotated[str, typer.Argument(metavar="ID", help=ID_HELP)],
) -> None:
    """One report: what was reported and why, what the image was made from (prompt, model,
    moderation verdict), and how it was resolved."""
    data = edge.run(lambda core: core.show_report(report_id)).model_dump(mode="json")

    def human() -> None:
        from .. import console

        console.key_values(
            f"report {data['id']}", [(k, v) for k, v in data.items() if k != "id" and v not in ("", [], None)]
        )

    edge.emit(data, items=[], human=human)


@app.command("resolve", cls=MirrorCommand)
@with_store_settings
def resolve(
    edge: Edge,
    report_id: Annotated[str, typer.Argument(metavar="ID", help=ID_HELP)],
    restore: Annotated[bool, option("--restore", help="Show the avatar again (it was fine).")] = False,
    remove: Annotated[
        bool, option("--remove", help="Hide it for good and delete its image (the report is kept).")
    ] = False,
    note: Annotated[str, option("--note", metavar="TEXT", help="Why (kept with the report).")] = "",
    by: Annotated[
        str | None, option("--by", metavar="NAME", help="Who decides (default: the operator's login name).")
    ] = None,
) -> None:
    """Resolve a report: --restore shows the avatar again (the one shown when it is the newest),
    --remove keeps it hidden and deletes its image and thumbnail from storage."""
    import getpass

    from ..errors import ExitCode

    if restore == remove:
        edge.fail(
            "UsageError",
            "Pass exactly one of --restore or --remove.",
            f"e.g. mirror reports resolve {report_id[:64]} --restore --note 'looks fine'",
            ExitCode.USAGE,
        )
    if not note.strip():
        edge.fail(
            "UsageError",
            "A resolution needs a --note saying why.",
            f"e.g. mirror reports resolve {report_id[:64]} --remove --note 'violent imagery'",
            ExitCode.USAGE,
        )
    who = f"operator:{(by or getpass.getuser())[:60]}"
    data = edge.run(
        lambda core: core.resolve_report(report_id, "restore" if restore else "remove", by=who, note=note)
    ).model_dump(mode="json")
    edge.emit(
        data,
        items=[],
        human=lambda: typer.echo(
            f"{data['id']}: {data['status']} by {who} (avatar {data['avatar_id']} of {data['user_id']} "
            + ("shown again)" if restore else "hidden for good, its image deleted)")
        ),
    )

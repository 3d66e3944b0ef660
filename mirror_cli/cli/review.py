"""mirror review: the designers' review page on loopback, and the same decisions from the shell."""

import getpass
import ipaddress
import os
from typing import Annotated, Any

import typer

from .common import Edge, MirrorCommand, MirrorSubGroup, option, outputs, with_settings

app = typer.Typer(
    cls=MirrorSubGroup,
    help="Review the fallback set and flagged avatars: approve, reject, note. Without a subcommand, "
    "serve the review page on loopback.",
    invoke_without_command=True,
    no_args_is_help=False,
)

ByOpt = Annotated[
    str | None, option("--by", metavar="NAME", help="Who decides (env MIRROR_REVIEWER, else your login name).")
]
FlaggedOpt = Annotated[bool, option("--flagged", help="Flagged avatars (keys <user>/<avatar id>), not the set.")]
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="<style>/<stage>/<variant>, or <user>/<avatar id>.")]
NoteOpt = Annotated[str | None, option("--note", metavar="TEXT", help="A note for the team (max 500 chars).")]


def _reviewer(by: str | None) -> str:
    if by:
        return by
    env = os.environ.get("MIRROR_REVIEWER")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "designer"


@app.callback(invoke_without_command=True)
@with_settings
@outputs("debug")
def review(
    edge: Edge,
    ctx: typer.Context,
    host: Annotated[str, option("--host", metavar="ADDR", help="A loopback address.")] = "127.0.0.1",
    port: Annotated[int, option("--port", min=0, max=65535, help="Port of the page.")] = 8765,
    by: ByOpt = None,
) -> None:
    """Serve the review page: the set or the flagged queue, side by side with the previous approved
    version, keyboard shortcuts (A approve, R reject, N note, E re-render)."""
    if ctx.invoked_subcommand:
        return

    def check_host() -> None:
        from ..errors import UsageError

        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise UsageError(
                f"The review page serves on loopback only, not {host!r}.",
                "Use --host 127.0.0.1 (reach it from elsewhere through an SSH tunnel).",
            )

    edge.guard(check_host)
    core = edge.guard(edge.open)
    try:
        import uvicorn

        from ..review.app import create_review_app

        app_ = edge.guard(lambda: create_review_app(core, _reviewer(by)))
        typer.echo(f"review page: http://{host}:{port}/  (Ctrl+C to stop)", err=True)
        uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False, server_header=False)
    finally:
        core.close()


@app.command("list", cls=MirrorCommand)
@with_settings
def list_items(
    edge: Edge,
    flagged: FlaggedOpt = False,
    stage: Annotated[str | None, option("--stage", metavar="STAGE", help="Only this stage.")] = None,
    variant: Annotated[str | None, option("--variant", metavar="NAME", help="Only this variant (or user).")] = None,
    state: Annotated[str | None, option("--state", metavar="STATE", help="draft, approved or rejected.")] = None,
) -> None:
    """What there is to review, with each asset's state, who decided, when, and the note."""

    def call(core: Any) -> list[dict[str, Any]]:
        from ..errors import UsageError
        from ..review import ReviewDesk

        if state is not None and state not in ("draft", "approved", "rejected"):
            raise UsageError(f"Unknown state {state[:40]!r}.", "Use draft, approved or rejected.")
        desk = ReviewDesk(core)
        found = desk.items("flagged" if flagged else "set", stage=stage, variant=variant, state=state)
        return [i.to_dict() for i in found]

    rows = edge.run(call)

    # a flagged avatar hidden by a report says so (and whether its image is gone)
    extra = (lambda r: (r["hidden"] or "",)) if flagged else (lambda r: ())
    table = [(r["key"], r["state"], r["by"] or "", (r["at"] or "")[:16], r["note"], *extra(r)) for r in rows]
    columns = ["key", "state", "by", "when", "note", *(["hidden"] if flagged else [])]
    title = "flagged avatars" if flagged else "fallback set"
    edge.emit_table({"items": len(rows)}, (title, columns, table), items=rows, empty="nothing to review")


def _decide(edge: Edge, key: str, state: str | None, flagged: bool, by: str | None, note: str | None) -> None:
    def call(core: Any) -> dict[str, Any]:
        from ..review import ReviewDesk

        review = ReviewDesk(core).decide("avatar" if flagged else "fallback", key, state, _reviewer(by), note)
        out: dict[str, Any] = review.to_dict()
        out.pop("history")
        return out

    result = edge.run(call)

    def human() -> None:
        from .. import console

        console.info(f"{result['key']}: {result['state']} by {result['by']}" + (f" ({result['note']})" if note else ""))

    edge.emit(result, items=[], human=human)


@app.command("approve", cls=MirrorCommand)
@with_settings
def approve(edge: Edge, key: KeyArg, flagged: FlaggedOpt = False, by: ByOpt = None, note: NoteOpt = None) -> None:
    """Approve one asset (a fallback is served once every variant of its stage is approved)."""
    _decide(edge, key, "approved", flagged, by, note)


@app.command("reject", cls=MirrorCommand)
@with_settings
def reject(edge: Edge, key: KeyArg, flagged: FlaggedOpt = False, by: ByOpt = None, note: NoteOpt = None) -> None:
    """Reject one asset (its stage keeps being served from the shipped set)."""
    _decide(edge, key, "rejected", flagged, by, note)


@app.command("note", cls=MirrorCommand)
@with_settings
def note_(
    edge: Edge,
    key: KeyArg,
    text: Annotated[str, typer.Argument(metavar="TEXT")],
    flagged: FlaggedOpt = False,
    by: ByOpt = None,
) -> None:
    """Write a note on one asset, keeping its state."""
    _decide(edge, key, None, flagged, by, text)

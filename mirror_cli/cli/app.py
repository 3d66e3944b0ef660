"""The Typer application. Heavy modules (openai, firebase_admin, rich) load only when a command
needs them, so ``mirror --help`` stays fast."""

import typer

from .. import __version__
from . import evolve, generate, init, trilogy
from .common import MirrorCommand, MirrorGroup

app = typer.Typer(
    name="mirror",
    cls=MirrorGroup,
    help="Mirror Realm reflection avatars: generate, evolve and review 3D-cartoon portraits in batch. "
    "Settings: flags, then MIRROR_* environment variables, then mirror.yaml, then your project folder, "
    "then the defaults shipped with mirror. Start a project with 'mirror init'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mirror {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, metavar="", help="Show the version."
    ),
) -> None:
    """Settings come from flags, then MIRROR_* environment variables, then mirror.yaml, then defaults."""


app.command("init", cls=MirrorCommand)(init.init)
app.command("generate", cls=MirrorCommand)(generate.generate)
app.command("evolve", cls=MirrorCommand)(evolve.evolve)
app.command("trilogy", cls=MirrorCommand)(trilogy.trilogy)

from . import canary, doctor, gallery, purge, reports, review, runs, seed, serve, usage, users, worker  # noqa: E402

app.command("usage", cls=MirrorCommand)(usage.usage)
app.command("purge-cache", cls=MirrorCommand)(purge.purge_cache)
app.command("seed-fallbacks", cls=MirrorCommand)(seed.seed_fallbacks)
app.command("gallery", cls=MirrorCommand)(gallery.gallery)
app.command("doctor", cls=MirrorCommand)(doctor.doctor)
app.command("canary", cls=MirrorCommand)(canary.canary)
app.command("serve", cls=MirrorCommand)(serve.serve)
app.command("worker", cls=MirrorCommand)(worker.worker)
app.add_typer(runs.app, name="runs")
app.add_typer(users.app, name="users")
app.add_typer(review.app, name="review")
app.add_typer(reports.app, name="reports")


def main() -> None:
    app()

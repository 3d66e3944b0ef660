"""The Typer application. Heavy modules (openai, firebase_admin, rich) load only when a command
needs them, so ``mirror --help`` stays fast."""

import typer

from .. import __version__
from . import evolve, generate, trilogy

app = typer.Typer(
    name="mirror",
    help="Mirror Realm reflection avatars: generate, evolve and review 3D-cartoon portraits in batch.",
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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Settings come from flags, then MIRROR_* environment variables, then mirror.yaml, then defaults."""


app.command("generate")(generate.generate)
app.command("evolve")(evolve.evolve)
app.command("trilogy")(trilogy.trilogy)

from . import doctor, gallery, purge, runs, seed, serve, usage, users  # noqa: E402

app.command("usage")(usage.usage)
app.command("purge-cache")(purge.purge_cache)
app.command("seed-fallbacks")(seed.seed_fallbacks)
app.command("gallery")(gallery.gallery)
app.command("doctor")(doctor.doctor)
app.command("serve")(serve.serve)
app.add_typer(runs.app, name="runs")
app.add_typer(users.app, name="users")


def main() -> None:
    app()

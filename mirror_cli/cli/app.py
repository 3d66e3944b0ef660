"""The Typer application. Heavy modules (openai, firebase_admin, rich) load only when a command
needs them, so ``mirror --help`` stays fast."""

import typer

from .. import __version__
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


from . import (  # noqa: E402
    canary,
    doctor,
    evolve,
    gallery,
    generate,
    init,
    purge,
    reports,
    review,
    runs,
    seed,
    serve,
    trilogy,
    usage,
    users,
    worker,
)

# Each subcommand, in the order --help lists them: its name and the function that runs it.
COMMANDS = {
    "init": init.init,
    "generate": generate.generate,
    "evolve": evolve.evolve,
    "trilogy": trilogy.trilogy,
    "usage": usage.usage,
    "purge-cache": purge.purge_cache,
    "seed-fallbacks": seed.seed_fallbacks,
    "gallery": gallery.gallery,
    "doctor": doctor.doctor,
    "canary": canary.canary,
    "serve": serve.serve,
    "worker": worker.worker,
}
for name, command in COMMANDS.items():
    app.command(name, cls=MirrorCommand)(command)
for name, group in {"runs": runs.app, "users": users.app, "review": review.app, "reports": reports.app}.items():
    app.add_typer(group, name=name)


def main() -> None:
    app()

"""The one CLI edge. Every command parses its options, then hands one function of the core to
``Edge.run``, which opens the core, shows progress, closes the core, and turns user-worded errors
into an exit code plus a message (or one JSON object under ``--json``). Output goes through
``Edge.emit``: one JSON object ``{"summary": {...}, "jobs"|"items": [...]}`` for every command."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from ..errors import ExitCode, MirrorError

if TYPE_CHECKING:
    from ..core import Mirror
    from ..settings import Settings

T = TypeVar("T")

SETTINGS_PANEL = "Settings (flag > MIRROR_* env > mirror.yaml > project folder > package defaults)"


def option(
    *names: str, help: str, metavar: str = "", env: str | None = None, panel: str | None = None, **kw: Any
) -> Any:
    """A typer option with a plain metavar (no '<bool>'-style type noise) and its env var shown."""
    return typer.Option(
        *names,
        help=help,
        metavar=metavar,
        envvar=env,
        show_envvar=env is not None,
        rich_help_panel=panel,
        **kw,
    )


def setting(name: str, help: str, metavar: str, **kw: Any) -> Any:
    """A shared setting: its flag, its MIRROR_* variable, in the one settings panel."""
    return option(
        f"--{name.replace('_', '-')}",
        help=help,
        metavar=metavar,
        env=f"MIRROR_{name.upper()}",
        panel=SETTINGS_PANEL,
        **kw,
    )


# Settings every command reads: where the configs and the store are.
STORE_SETTINGS: dict[str, Any] = {
    "settings_file": Annotated[
        Path | None,
        option(
            "--settings",
            help="Settings file (default: ./mirror.yaml).",
            metavar="FILE",
            env="MIRROR_SETTINGS",
            panel=SETTINGS_PANEL,
        ),
    ],
    "config_dir": Annotated[Path | None, setting("config_dir", "Folder of YAML configs (default: shipped).", "DIR")],
    "data_dir": Annotated[Path | None, setting("data_dir", "Local store folder.", "DIR")],
    "store": Annotated[str | None, setting("store", "local or firebase.", "KIND")],
    "style": Annotated[str | None, setting("style", "Style name (styles/NAME.yaml).", "NAME")],
    "now": Annotated[
        str | None,
        setting("now", "Act as of this ISO-8601 instant, e.g. 2026-03-29T01:30:00Z (backfills, replays).", "INSTANT"),
    ],
    "firebase_project": Annotated[str | None, setting("firebase_project", "Firebase project id.", "ID")],
    "firebase_bucket": Annotated[str | None, setting("firebase_bucket", "Cloud Storage bucket.", "BUCKET")],
    "firebase_credentials": Annotated[
        Path | None,
        setting("firebase_credentials", "Service-account key file (default: Application Default Credentials).", "FILE"),
    ],
}
# Settings of the commands that make (or estimate) images.
GENERATION_SETTINGS: dict[str, Any] = {
    "provider": Annotated[str | None, setting("provider", "local or openai.", "NAME")],
    "model": Annotated[str | None, setting("model", "Model from models.yaml.", "MODEL")],
    "quality": Annotated[str | None, setting("quality", "low, medium, high or auto.", "Q")],
    "size": Annotated[str | None, setting("size", "WIDTHxHEIGHT, e.g. 1024x1024.", "WxH")],
    "base_url": Annotated[str | None, setting("base_url", "OpenAI-compatible endpoint.", "URL")],
    "concurrency": Annotated[int | None, setting("concurrency", "Users in parallel.", "N", min=1, max=256)],
    "secrets_file": Annotated[Path | None, setting("secrets_file", "File with OPENAI_API_KEY=...", "FILE")],
    "fallback_dir": Annotated[
        Path | None, setting("fallback_dir", "Your fallback set (default: ./fallback_assets).", "DIR")
    ],
}
SETTINGS_PARAMS: dict[str, Any] = {**STORE_SETTINGS, **GENERATION_SETTINGS}

UserOpt = Annotated[str, option("--user", "-u", metavar="USER", help="User id.")]
JsonOpt = Annotated[bool, option("--json", help="One JSON object on stdout (for scripts and cron).")]
DebugOpt = Annotated[bool, option("--debug", help="Show the traceback of an error.")]
VerboseOpt = Annotated[bool, option("--verbose", "-v", help="One line per job instead of the summary table.")]
DryRunOpt = Annotated[
    bool, option("--dry-run", help="Show the jobs, cache hits and estimated cost; spend nothing (no key needed).")
]
MaxCostOpt = Annotated[
    float | None, option("--max-cost", min=0, metavar="USD", help="Stop spending past this many USD in this run.")
]
ShardOpt = Annotated[
    str | None,
    option(
        "--shard",
        metavar="i/N",
        help="This process handles shard i of N (default from CLOUD_RUN_TASK_INDEX/COUNT or JOB_COMPLETION_INDEX).",
    ),
]
ResumeOpt = Annotated[str | None, option("--resume", metavar="RUN_ID", help="Continue an interrupted run.")]
ViaOpt = Annotated[
    str,
    option(
        "--via",
        metavar="sync|batch-api",
        help="batch-api submits to the OpenAI Batch API (half price, results within 24 h; "
        "collect with 'mirror runs poll RUN_ID').",
    ),
]
ReportOpt = Annotated[Path | None, option("--report", metavar="FILE", help="Also write the JSON report here.")]


def emit_json(payload: Any) -> None:
    from ..errors import redact

    sys.stdout.write(redact(json.dumps(payload, indent=2, default=str)) + "\n")
    sys.stdout.flush()


def error_payload(error: str, message: str, hint: str | None, code: int) -> dict[str, Any]:
    """The JSON of a failure: the common shape, plus the error's fields at the top level."""
    return {
        "summary": {"ok": False, "error": error, "exit_code": code},
        "items": [],
        "error": error,
        "message": message,
        "hint": hint,
        "exit_code": code,
    }


@dataclass
class Edge:
    """One command's edge: its settings flags and output options."""

    flags: dict[str, Any]
    as_json: bool = False
    debug: bool = False
    verbose: bool = False
    via: str = "sync"
    report: Path | None = None  # --report FILE: the run's JSON report is also written there

    def settings(self) -> Settings:
        """The settings of this command: its flags over the environment, mirror.yaml and defaults."""
        from ..errors import UsageError
        from ..settings import load_settings

        if self.via not in ("sync", "batch-api"):
            raise UsageError(f"Unknown --via {self.via!r}.", "Use --via sync or --via batch-api.")
        flags = {k: v for k, v in self.flags.items() if v is not None and k != "settings_file"}
        if self.via == "batch-api":
            flags["provider"] = "openai-batch"
        return load_settings(flags, self.flags.get("settings_file"))

    def open(self) -> Mirror:
        from ..core import Mirror

        return Mirror(self.settings())

    def run(self, fn: Callable[[Mirror], T], *, progress: str | None = None) -> T:
        """Open the core, call ``fn(core)`` (with a progress display sized by the planned jobs when
        ``progress`` names one), close the core; errors become an exit code and a message. A
        ``--report`` path is checked first: one that cannot be written costs nothing."""

        def checked() -> T:
            if self.report is not None:
                from .outputs import check_output_file

                check_output_file(self.report)
            return self._with_core(fn, progress)

        return self.guard(checked)

    def _with_core(self, fn: Callable[[Mirror], T], progress: str | None) -> T:
        core = self.open()
        try:
            if progress is None:
                return fn(core)
            from .. import console

            with console.progress(progress, enabled=not self.as_json, log_jobs=self.verbose) as bar:
                core.on_planned = bar.start
                core.on_progress = bar.advance
                return fn(core)
        finally:
            core.close()

    def guard(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; a user-worded error exits with its code, anything else with 1 (a bug)."""
        try:
            return fn()
        except MirrorError as err:
            if self.debug:
                traceback.print_exc()
            self.fail(type(err).__name__, err.message, err.hint, int(err.exit_code))
        except KeyboardInterrupt:
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except Exception as exc:
            if self.debug:
                raise
            user_error = _user_error(exc)
            if user_error is not None:
                self.fail(type(user_error).__name__, user_error.message, user_error.hint, int(user_error.exit_code))
            from ..errors import redact

            self.fail(
                "InternalError",
                f"unexpected failure: {redact(f'{type(exc).__name__}: {exc}')}",
                "Run again with --debug and report the traceback.",
                int(ExitCode.ERROR),
            )

    def usage_error(self, message: str, hint: str) -> NoReturn:
        """Refuse options that do not go together (exit 2), before anything is opened or spent."""
        self.fail("UsageError", message, hint, int(ExitCode.USAGE))

    def fail(self, error: str, message: str, hint: str | None, code: int) -> NoReturn:
        if self.as_json:
            emit_json(error_payload(error, message, hint, code))
        else:
            from .. import console

            console.error(message, hint, code)
        raise typer.Exit(code)

    def emit(
        self,
        summary: dict[str, Any],
        *,
        jobs: Sequence[Any] | None = None,
        items: Sequence[Any] | None = None,
        human: Callable[[], None] | None = None,
    ) -> None:
        """The command's result: JSON under --json, else ``human()``."""
        if self.as_json:
            payload: dict[str, Any] = {"summary": summary}
            if jobs is not None:
                payload["jobs"] = list(jobs)
            else:
                payload["items"] = list(items or [])
            emit_json(payload)
        elif human is not None:
            human()

    def emit_table(
        self,
        summary: dict[str, Any],
        table: tuple[str, Sequence[str], Sequence[Sequence[Any]]],
        *,
        items: Sequence[Any] | None = None,
        jobs: Sequence[Any] | None = None,
        empty: str | None = None,
    ) -> None:
        """A result whose human form is one table, ``(title, columns, rows)``; ``empty`` is its
        caption when it has no rows."""

        def human() -> None:
            from .. import console

            console.table(*table, caption=None if table[2] else empty)

        self.emit(summary, items=items, jobs=jobs, human=human)

    def emit_line(self, summary: dict[str, Any], line: str, *, items: Sequence[Any] = ()) -> None:
        """A result whose human form is one line on stdout."""
        self.emit(summary, items=items, human=lambda: typer.echo(line))


def _user_error(exc: Exception) -> MirrorError | None:
    """Failures caused by the user's input or machine, not by a bug: a full disk (exit 8), a
    value out of bounds (exit 2, naming the field)."""
    from pydantic import ValidationError

    from ..errors import UsageError, as_store_error

    store = as_store_error(exc)
    if store is not None:
        return store
    if isinstance(exc, ValidationError):
        fields = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"]) or "(value)"
            fields.append(f"{where}: {err['msg']}")
        return UsageError("Invalid value: " + "; ".join(fields) + ".", "Pass a value within the bounds named above.")
    if isinstance(exc, OverflowError):
        return UsageError(f"A number is out of range ({exc}).", "Pass a smaller value.")
    return None


def report_exit(report: Any) -> int:
    if getattr(report, "store_error", None):
        return int(ExitCode.STORE)
    if report.stopped and report.stopped.startswith("interrupted"):
        return int(ExitCode.INTERRUPTED)
    if report.stopped:
        return int(ExitCode.STOPPED)
    if getattr(report, "alerts", None):
        return int(ExitCode.OVER_THRESHOLD)
    if report.failed or report.degraded:
        return int(ExitCode.PARTIAL)
    return int(ExitCode.OK)


def render_report(
    report: Any,
    edge: Edge,
    *,
    title: str,
    batch: bool = False,
    notes: Sequence[str] = (),
) -> NoReturn:
    """A run's report: JSON, or a summary table for batch runs (per-job rows with --verbose,
    and always for the failed jobs), and ``notes`` on stderr; then the exit code that says how the
    run went.

    ``edge.report`` (--report) was checked before the run (``Edge.run``); its folder is made here.
    Should writing it fail anyway, the JSON goes to stdout (whatever the output mode: the report is never lost), the
    error to stderr, and the exit code is the run's own, or 2 when the run itself went well."""
    summary = report.summary()
    # what the run did not do, and what image moderation said (JSON: summary.notes)
    notes = [*notes, *getattr(report, "notes", list)()]
    if notes:
        summary["notes"] = list(notes)
    jobs = [o.to_dict() for o in report.outcomes]
    code = report_exit(report)
    report_file = edge.report
    if report_file is not None:
        from ..errors import redact

        payload = {"summary": summary, "jobs": jobs}
        try:
            report_file.parent.mkdir(parents=True, exist_ok=True)
            report_file.write_text(redact(json.dumps(payload, indent=2, default=str)) + "\n", encoding="utf-8")
        except OSError as exc:
            emit_json(payload)
            from .. import console

            console.error(
                f"the run finished, but its report could not be written to {report_file} "
                f"({exc.strerror or exc}); the report is on stdout.",
                "Free space or fix the folder's permissions; the JSON above is the same report.",
                code or int(ExitCode.USAGE),
            )
            raise typer.Exit(code or int(ExitCode.USAGE)) from None

    def human() -> None:
        from .. import console

        console.run_report(title, report, per_job=edge.verbose or not batch)
        for alert in getattr(report, "alerts", []):  # over a threshold: exit code 9
            console.labelled(f"warning ({alert.kind})", alert.message, "bold yellow")
        for note in notes:
            console.labelled("note", note, "yellow", stderr=True)

    edge.emit(summary, jobs=jobs, human=human)
    raise typer.Exit(code)


# The output options a command with an ``edge`` parameter shows, in --help order, with their defaults.
OUTPUT_PARAMS: dict[str, tuple[Any, Any]] = {
    "report": (ReportOpt, None),
    "via": (ViaOpt, "sync"),
    "verbose": (VerboseOpt, False),
    "as_json": (JsonOpt, False),
    "debug": (DebugOpt, False),
}
F = TypeVar("F", bound=Callable[..., Any])


def outputs(*names: str) -> Callable[[F], F]:
    """Which of OUTPUT_PARAMS a command shows, when not just --json and --debug."""

    unknown = set(names) - set(OUTPUT_PARAMS)
    if unknown:
        raise ValueError(f"unknown output options {sorted(unknown)}")

    def mark(fn: F) -> F:
        fn.__dict__["edge_outputs"] = names
        return fn

    return mark


def with_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every shared settings option (it receives them as ``flags``, or inside its
    ``edge`` with its output options)."""
    return _with(fn, SETTINGS_PARAMS)


def with_store_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Only the store settings, for commands that make no images (their help stays short)."""
    return _with(fn, STORE_SETTINGS)


def without_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Only the output options (a command that opens no store, e.g. init)."""
    return _with(fn, {})


def _with(fn: Callable[..., Any], params: dict[str, Any]) -> Callable[..., Any]:
    """Add ``params`` (settings) to ``fn``'s options. A command that takes ``edge`` instead of
    ``flags`` also gets its output options (``outputs``; default --json and --debug) and receives one
    ``Edge`` built from both."""
    # eval_str: a module with `from __future__ import annotations` has string annotations, and
    # Typer takes a __signature__ as given: unevaluated, its options would lose their metadata.
    sig = inspect.signature(fn, eval_str=True)
    takes_edge = "edge" in sig.parameters
    shown = fn.__dict__.get("edge_outputs", ("as_json", "debug")) if takes_edge else ()
    outs = {name: OUTPUT_PARAMS[name] for name in OUTPUT_PARAMS if name in shown}
    own = [p for p in sig.parameters.values() if p.name not in ("flags", "edge")]
    extra = [
        *(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, (a, d) in outs.items()),
        *(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a) for n, a in params.items()),
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        flags = {k: kwargs.pop(k) for k in params}
        if not takes_edge:
            return fn(flags=flags, **kwargs)
        return fn(edge=Edge(flags, **{k: kwargs.pop(k) for k in outs}), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *extra]}
    return wrapper


class _QuietHelp:
    """The --help flag without a '<bool>' type label."""

    def get_help_option(self, ctx: Any) -> Any:
        opt = super().get_help_option(ctx)  # type: ignore[misc]
        if opt is not None:
            opt.metavar = ""
        return opt


class MirrorCommand(_QuietHelp, TyperCommand):
    """Every subcommand's class (``app.command(name, cls=MirrorCommand)``)."""


class MirrorSubGroup(_QuietHelp, TyperGroup):
    """The class of the command groups under the root (runs, users)."""


class MirrorGroup(_QuietHelp, TyperGroup):
    """The root group: under ``--json``, Typer's usage errors (unknown option, bad value, missing
    argument) become the same JSON object as every other error, with their exit code (2)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except TyperException as exc:  # Click-style usage errors derive from it
            hint = "Run the command with --help for its options."
            emit_json(error_payload(type(exc).__name__, exc.format_message(), hint, exc.exit_code))
            rv = exc.exit_code
        except typer.Abort:
            rv = int(ExitCode.INTERRUPTED)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv

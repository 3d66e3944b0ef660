"""Options shared by the subcommands, the error edge, and report rendering."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..errors import ExitCode, MirrorError

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Local store folder [env MIRROR_DATA_DIR].", rich_help_panel="Settings"),
]
ConfigDir = Annotated[
    Path | None,
    typer.Option("--config-dir", help="Folder of YAML configs [env MIRROR_CONFIG_DIR].", rich_help_panel="Settings"),
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="local | firebase [env MIRROR_STORE].", rich_help_panel="Settings"),
]
ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", help="local | openai [env MIRROR_PROVIDER].", rich_help_panel="Settings"),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Model from configs/models.yaml [env MIRROR_MODEL].", rich_help_panel="Settings"),
]
QualityOpt = Annotated[
    str | None, typer.Option("--quality", help="low | medium | high | auto.", rich_help_panel="Settings")
]
SizeOpt = Annotated[
    str | None, typer.Option("--size", help="WIDTHxHEIGHT, e.g. 1024x1024.", rich_help_panel="Settings")
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible endpoint [env MIRROR_OPENAI_BASE_URL].",
        rich_help_panel="Settings",
    ),
]
StyleOpt = Annotated[
    str | None, typer.Option("--style", help="Style under configs/styles.", rich_help_panel="Settings")
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, max=256, help="Users in parallel.", rich_help_panel="Settings"),
]
FbProjectOpt = Annotated[
    str | None,
    typer.Option(
        "--firebase-project", help="Firebase project id [env MIRROR_FIREBASE_PROJECT].", rich_help_panel="Settings"
    ),
]
FbBucketOpt = Annotated[
    str | None,
    typer.Option(
        "--firebase-bucket", help="Cloud Storage bucket [env MIRROR_FIREBASE_BUCKET].", rich_help_panel="Settings"
    ),
]
FbCredOpt = Annotated[
    Path | None,
    typer.Option(
        "--firebase-credentials",
        help="Service-account JSON [env GOOGLE_APPLICATION_CREDENTIALS].",
        rich_help_panel="Settings",
    ),
]
SecretsOpt = Annotated[
    Path | None,
    typer.Option(
        "--secrets-file", help="File with OPENAI_API_KEY=... [env MIRROR_SECRETS_FILE].", rich_help_panel="Settings"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout (for cron).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the jobs, cache hits and estimated cost; spend nothing.")
]
MaxCostOpt = Annotated[
    float | None, typer.Option("--max-cost", min=0, help="Stop spending past this many USD in this run.")
]
ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="i/N: this process handles shard i of N "
        "(default from CLOUD_RUN_TASK_INDEX/COUNT or JOB_COMPLETION_INDEX).",
    ),
]
ResumeOpt = Annotated[str | None, typer.Option("--resume", help="Continue an interrupted run by id.")]
ViaOpt = Annotated[
    str,
    typer.Option(
        "--via",
        help="sync (default) or batch-api: submit to the OpenAI Batch API "
        "(half price, results within 24 h; collect with 'mirror runs poll RUN_ID').",
    ),
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Also write the JSON report to this file.")]


def settings_from(**flags: Any) -> Any:
    from ..settings import load_settings

    return load_settings({k: v for k, v in flags.items() if v is not None})


def emit_json(payload: Any) -> None:
    from ..errors import redact

    sys.stdout.write(redact(json.dumps(payload, indent=2, default=str)) + "\n")
    sys.stdout.flush()


def guarded(fn: Callable[[], T], *, as_json: bool, debug: bool) -> T:
    """Run one core call; turn user-worded errors into an exit code and a readable message."""
    try:
        return fn()
    except MirrorError as err:
        if debug:
            traceback.print_exc()
        if as_json:
            emit_json(err.to_dict())
        else:
            from .. import console

            console.error(err.message, err.hint, int(err.exit_code))
        raise typer.Exit(int(err.exit_code)) from None
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:
        if debug:
            raise
        user_error = _user_error(exc)
        if user_error is not None:
            if as_json:
                emit_json(user_error.to_dict())
            else:
                from .. import console

                console.error(user_error.message, user_error.hint, int(user_error.exit_code))
            raise typer.Exit(int(user_error.exit_code)) from None
        from ..errors import redact

        msg = redact(f"{type(exc).__name__}: {exc}")
        if as_json:
            emit_json(
                {
                    "error": "InternalError",
                    "message": msg,
                    "hint": "Run again with --debug.",
                    "exit_code": int(ExitCode.ERROR),
                }
            )
        else:
            from .. import console

            console.error(
                f"unexpected failure: {msg}",
                "Run again with --debug and report the traceback.",
                int(ExitCode.ERROR),
            )
        raise typer.Exit(int(ExitCode.ERROR)) from None


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
    if report.failed or report.degraded:
        return int(ExitCode.PARTIAL)
    return int(ExitCode.OK)


def render_report(
    report: Any,
    *,
    as_json: bool,
    title: str,
    report_file: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    payload = {"summary": report.summary(), "jobs": [o.to_dict() for o in report.outcomes], **(extra or {})}
    if report_file is not None:
        from ..errors import redact

        report_file.write_text(redact(json.dumps(payload, indent=2, default=str)) + "\n", encoding="utf-8")
    if as_json:
        emit_json(payload)
        return
    from .. import console

    rows = []
    for o in report.outcomes:
        cost = f"${o.cost_usd:.4f}" if o.status != "planned" else f"~${o.estimate_usd:.4f}"
        where = (o.image_url or "").removeprefix("file://") or o.served_path or ""
        rows.append((o.user_id, o.target, o.status, cost, where, o.reason or ""))
    s = report.summary()
    caption = (
        f"{s['generated']} generated, {s['cached']} cached, {s['ingested']} ingested from spool, "
        f"{s['degraded']} degraded, {s['failed']} failed; cost ${s['cost_usd']:.4f}"
    )
    if s["planned"]:
        caption += f"; estimated ${s['estimate_usd']:.4f} for {s['planned']} job(s) (dry run: nothing spent)"
    if report.stopped:
        caption += f"; STOPPED: {report.stopped}"
    console.table(title, ["user", "target", "status", "cost", "image", "note"], rows, caption=caption)
    for o in report.outcomes:
        if o.message and o.status in ("generated", "cached", "ingested"):
            console.info(f"[bold #E8863A]I-There[/] to {o.user_id} ({o.target}): {o.message}")


SETTINGS_PARAMS: dict[str, Any] = {
    "data_dir": DataDir,
    "config_dir": ConfigDir,
    "store": StoreOpt,
    "provider": ProviderOpt,
    "model": ModelOpt,
    "quality": QualityOpt,
    "size": SizeOpt,
    "base_url": BaseUrlOpt,
    "style": StyleOpt,
    "concurrency": ConcurrencyOpt,
    "firebase_project": FbProjectOpt,
    "firebase_bucket": FbBucketOpt,
    "firebase_credentials": FbCredOpt,
    "secrets_file": SecretsOpt,
}


def with_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared settings options; it receives them as ``flags``."""
    import functools
    import inspect

    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.name != "flags"]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
        for name, ann in SETTINGS_PARAMS.items()
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        flags = {k: kwargs.pop(k) for k in SETTINGS_PARAMS}
        return fn(flags=flags, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**{p.name: p.annotation for p in own}, **SETTINGS_PARAMS}
    return wrapper


def open_core(flags: dict[str, Any], via: str = "sync", **extra: Any) -> Any:
    from ..core import Mirror
    from ..errors import UsageError

    if via not in ("sync", "batch-api"):
        raise UsageError(f"Unknown --via {via!r}.", "Use --via sync or --via batch-api.")
    if via == "batch-api":
        flags = {**flags, "provider": "openai-batch"}
    return Mirror(settings_from(**flags, **extra))

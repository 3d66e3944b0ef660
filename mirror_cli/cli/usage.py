import csv
import io
import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from .common import DebugOpt, JsonOpt, emit_json, guarded, open_core, with_settings


@with_settings
def usage(
    flags: dict[str, Any],
    today: Annotated[bool, typer.Option("--today", help="Today only (default: this month).")] = False,
    since: Annotated[datetime | None, typer.Option("--since", formats=["%Y-%m-%d"], help="From this day.")] = None,
    until: Annotated[datetime | None, typer.Option("--until", formats=["%Y-%m-%d"], help="To this day.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="One user only.")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout, for spreadsheets.")] = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Spend, cache hit rate, fallbacks, tokens, projected month-end cost, store headroom, advice."""

    def call() -> Any:
        core = open_core(flags)
        try:
            return core.usage(
                period="today" if today else "month",
                since=since.date() if since else None,
                until=until.date() if until else None,
                user=user,
            )
        finally:
            core.close()

    figures = guarded(call, as_json=as_json, debug=debug)
    data = figures.to_dict()
    if as_json:
        emit_json(data)
        return
    flat = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    if as_csv:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(list(flat))
        writer.writerow(list(flat.values()))
        sys.stdout.write(buf.getvalue())
        return
    from .. import console

    console.key_values(
        f"usage {figures.start} .. {figures.end}" + (f" for {user}" if user else ""),
        [(k.replace("_", " "), v) for k, v in flat.items() if k not in ("period", "start", "end")],
    )
    console.table(
        "store operations today vs the Firebase free tier",
        ["operation", "today", "free tier", "headroom"],
        [(op, v["today"], v["free_tier"], f"{v['headroom']:.0%}") for op, v in figures.store_ops.items()],
    )
    for tip in figures.recommendations:
        console.info(f"[yellow]recommendation:[/] {tip}")

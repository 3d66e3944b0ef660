import csv
import io
import sys
from datetime import datetime
from typing import Annotated, Any

from .common import DebugOpt, Edge, JsonOpt, option, with_settings


@with_settings
def usage(
    flags: dict[str, Any],
    today: Annotated[bool, option("--today", help="Today only (default: this month).")] = False,
    since: Annotated[
        datetime | None, option("--since", metavar="YYYY-MM-DD", formats=["%Y-%m-%d"], help="From this day.")
    ] = None,
    until: Annotated[
        datetime | None, option("--until", metavar="YYYY-MM-DD", formats=["%Y-%m-%d"], help="To this day.")
    ] = None,
    user: Annotated[str | None, option("--user", "-u", metavar="USER", help="One user only.")] = None,
    as_csv: Annotated[bool, option("--csv", help="CSV on stdout, for spreadsheets.")] = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Spend, cache hit rate, fallbacks, tokens, projected month-end cost, store headroom, advice.

    JSON: the figures in "summary", one item per store operation (today vs the free tier)."""
    edge = Edge(flags, as_json, debug)
    figures = edge.run(
        lambda core: core.usage(
            period="today" if today else "month",
            since=since.date() if since else None,
            until=until.date() if until else None,
            user=user,
        )
    )
    data = figures.to_dict()
    ops = [{"operation": op, **v} for op, v in figures.store_ops.items()]
    flat = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    if as_csv and not as_json:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(list(flat))
        writer.writerow(list(flat.values()))
        sys.stdout.write(buf.getvalue())
        return

    def human() -> None:
        from .. import console

        console.key_values(
            f"usage {figures.start} .. {figures.end}" + (f" for {user}" if user else ""),
            [(k.replace("_", " "), v) for k, v in flat.items() if k not in ("period", "start", "end")],
        )
        console.table(
            "store operations today vs the Firebase free tier",
            ["operation", "today", "free tier", "headroom"],
            [(o["operation"], o["today"], o["free_tier"], f"{o['headroom']:.0%}") for o in ops],
        )
        if figures.selections:
            picks = ", ".join(f"{stage} {n}" for stage, n in figures.selections.items())
            console.info(f"selections (avatars users chose to show): {picks}")
        for tip in figures.recommendations:
            console.info(f"[yellow]recommendation:[/] {tip}")

    edge.emit(data, items=ops, human=human)

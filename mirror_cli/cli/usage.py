import csv
import io
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from ..units import money
from .common import Edge, option, with_settings


@with_settings
def usage(
    edge: Edge,
    today: Annotated[bool, option("--today", help="Today only (default: this month).")] = False,
    since: Annotated[
        datetime | None, option("--since", metavar="YYYY-MM-DD", formats=["%Y-%m-%d"], help="From this day.")
    ] = None,
    until: Annotated[
        datetime | None, option("--until", metavar="YYYY-MM-DD", formats=["%Y-%m-%d"], help="To this day.")
    ] = None,
    user: Annotated[str | None, option("--user", "-u", metavar="USER", help="One user only.")] = None,
    as_csv: Annotated[bool, option("--csv", help="CSV on stdout, for spreadsheets.")] = False,
    by: Annotated[
        str | None, option("--by", metavar="day", help="One row per day: the KPIs' trend, with a chart.")
    ] = None,
    chart: Annotated[
        Path | None, option("--chart", metavar="FILE", help="Also draw the daily KPIs into FILE (.png or .svg).")
    ] = None,
) -> None:
    """Spend, KPIs against their targets, cache hit rate, fallbacks, tokens, projected cost, advice.

    JSON: the figures in "summary" (with "kpis" and, per day, "days"), one item per store
    operation (today vs the free tier), or one item per day with --by day."""
    if by not in (None, "day"):
        edge.usage_error(f"Unknown --by {by!r}.", "Use --by day (one row per day).")
    if chart is not None:
        from ..charts import check_chart_path

        edge.guard(lambda: check_chart_path(chart))
    figures, targets = edge.run(
        lambda core: (
            core.usage(
                period="today" if today else "month",
                since=since.date() if since else None,
                until=until.date() if until else None,
                user=user,
            ),
            core.configs.limits.targets,
        )
    )
    data = figures.to_dict()
    ops = [{"operation": op, **v} for op, v in figures.store_ops.items()]
    flat = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    title = f"usage {figures.start} .. {figures.end}" + (f" for {user}" if user else "")
    if chart is not None:
        from ..charts import write_chart

        edge.guard(lambda: write_chart(figures.days, targets, chart, title))
    if as_csv and not edge.as_json:
        _write_csv(figures.days if by == "day" else [flat])
        return

    def human() -> None:
        from .. import console, units

        shown = {k: v for k, v in flat.items() if k not in ("period", "start", "end") and (k != "user" or v)}
        console.key_values(title, [(units.label(k, shown), units.figure(k, v)) for k, v in shown.items()])
        _show_kpis(edge, figures, targets, by_day=by == "day", chart=chart)
        console.table(
            "store operations today vs the Firebase free tier",
            ["operation", "today", "free tier", "headroom"],
            [
                (
                    units.label(o["operation"]),
                    units.figure(o["operation"], o["today"]),
                    units.figure(o["operation"], o["free_tier"]),
                    units.ratio(o["headroom"]),
                )
                for o in ops
            ],
        )
        _show_app_figures(figures)
        for tip in figures.recommendations:
            console.labelled("recommendation", tip, "yellow")

    edge.emit(data, items=figures.days if by == "day" else ops, human=human)


def _show_app_figures(figures: Any) -> None:
    """What users did in the app: the avatars they chose to show, the reports filed."""
    from .. import console

    if figures.selections:
        picks = ", ".join(f"{stage} {n}" for stage, n in figures.selections.items())
        console.info(f"selections (avatars users chose to show): {picks}")
    r = figures.reports
    if r.get("filed"):
        console.info(
            f"reports filed: {r['filed']} ({r['open']} open, {r['resolved']} resolved: "
            f"{r['restored']} restored, {r['removed']} removed)"
        )


def _write_csv(rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(rows[0]) if rows else ["day"])
    writer.writerows(list(r.values()) for r in rows)
    sys.stdout.write(buf.getvalue())


def _show_kpis(edge: Edge, figures: Any, targets: Any, *, by_day: bool, chart: Path | None) -> None:
    """The KPI table; with --by day the per-day table and the terminal chart."""
    from .. import console

    console.table("KPIs against their targets", ["KPI", "value", "target", ""], kpi_rows(figures.kpis))
    if by_day:
        console.table(
            "per day",
            ["day", "paid", "success", "p95", "compliance", "cache hits", "fallbacks", "cost"],
            day_rows(figures.days),
        )
        if figures.days:
            from ..charts import terminal_chart

            sys.stdout.write(edge.guard(lambda: terminal_chart(figures.days, targets)) + "\n")
    if chart is not None:
        console.info(f"chart: {chart}")


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "USD":
        return money(value)
    return f"{value:.2f} s"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def kpi_rows(kpis: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [
        (
            k["label"],
            _shown(k["value"], k["unit"]),
            ("≥ " if k["direction"] == "min" else "≤ ") + _shown(k["target"], k["unit"]),
            _mark(k["ok"]),
        )
        for k in kpis
    ]


def day_rows(days: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    def cell(d: dict[str, Any], key: str, unit: str) -> str:
        ok = d[f"{key}_ok"]
        return _shown(d[key], unit) + ("" if ok is None else (" ✓" if ok else " ✗"))

    return [
        (
            d["day"],
            d["paid"],
            cell(d, "success_rate", "ratio"),
            cell(d, "generation_p95_s", "s"),
            cell(d, "style_compliance", "ratio"),
            cell(d, "cache_hit_rate", "ratio"),
            d["fallbacks_served"],
            money(d["cost_usd"]),
        )
        for d in days
    ]

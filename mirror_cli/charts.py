"""`mirror usage --by day` drawn: a PNG/SVG file (matplotlib, headless Agg) and a terminal chart
(plotext). Both are optional extras ([charts]); each is imported only when a chart is asked for.

Two panels: the daily generation p95 against its target (seconds), and the daily rates (success,
style compliance, cache hits) against theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UsageError
from .telemetry.config import TargetsConfig

FORMATS = (".png", ".svg")
RATES = (
    ("success_rate", "success", "success_rate"),
    ("style_compliance", "style compliance", "style_compliance"),
    ("cache_hit_rate", "cache hits", "cache_hit_rate"),
)


def _missing(what: str) -> UsageError:
    return UsageError(
        f"Drawing charts needs {what}, which is not installed.",
        "Install the charts extra: pip install 'mirror-realm-avatars[charts]'.",
    )


def check_chart_path(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise UsageError(
            f"Cannot draw a chart as {path.name!r}: unknown format {path.suffix or '(none)'!r}.",
            "Name the file with .png or .svg, e.g. --chart kpis.png.",
        )
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} exists and is not a file.", "Pass a file path for --chart.")


def write_chart(days: list[dict[str, Any]], targets: TargetsConfig, path: Path, title: str) -> Path:
    """Draw the daily KPIs into ``path`` (.png or .svg)."""
    check_chart_path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise _missing("matplotlib") from None
    xs = [d["day"] for d in days]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, layout="constrained")
    try:
        fig.suptitle(title)
        p95 = [d["generation_p95_s"] for d in days]
        top.plot(xs, [float("nan") if v is None else v for v in p95], marker="o", label="generation p95")
        top.axhline(targets.generation_p95_s, linestyle="--", color="tab:red", label="target")
        top.set_ylabel("seconds")
        top.set_ylim(bottom=0)
        top.legend(loc="upper left")
        top.grid(alpha=0.3)
        for i, (key, label, target_field) in enumerate(RATES):
            color = f"C{i}"
            values = [float("nan") if d[key] is None else 100 * d[key] for d in days]
            bottom.plot(xs, values, marker="o", color=color, label=label)
            bottom.axhline(100 * getattr(targets, target_field), linestyle="--", color=color, alpha=0.6)
        bottom.set_ylabel("% (dashed: target)")
        bottom.set_ylim(0, 105)
        bottom.legend(loc="lower left")
        bottom.grid(alpha=0.3)
        bottom.tick_params(axis="x", labelrotation=45)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format=path.suffix.lower().lstrip("."))
    finally:
        plt.close(fig)
    return path


def terminal_chart(days: list[dict[str, Any]], targets: TargetsConfig, width: int = 100, height: int = 30) -> str:
    """The same two panels as text for a terminal (no colours: safe in logs and pipes); the x axis
    counts the days of the table above, in order."""
    try:
        import plotext
    except ImportError:
        raise _missing("plotext") from None
    xs = list(range(1, len(days) + 1))
    fig = plotext.figure
    fig.clear()
    fig.subplots(2, 1)
    fig.plot_size(width, height)
    fig.theme("colorless")
    top = fig.subplot(1, 1)
    top.title(f"generation p95 (s) by day {days[0]['day']} .. {days[-1]['day']}; line: target")
    p95 = [(x, d["generation_p95_s"]) for x, d in zip(xs, days, strict=True) if d["generation_p95_s"] is not None]
    if p95:
        top.draw(top.signal([x for x, _ in p95], [v for _, v in p95]).label("p95"))
    top.line(targets.generation_p95_s)
    bottom = fig.subplot(2, 1)
    bottom.title(f"success / compliance / cache hits (%); line: success target {targets.success_rate:.0%}")
    for key, label, _ in RATES:
        pts = [(x, 100 * d[key]) for x, d in zip(xs, days, strict=True) if d[key] is not None]
        if pts:
            bottom.draw(bottom.signal([x for x, _ in pts], [v for _, v in pts]).label(label))
    bottom.line(100 * targets.success_rate)
    text: str = fig.build().string(colorless=True)
    fig.clear()
    return text

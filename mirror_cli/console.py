"""The only module that imports rich, and only when something is shown on a terminal.

Text that comes from users, configs, the store or errors is always printed literally: Rich would
read ``[openai]`` in a hint or ``[b]`` in a user id as markup and drop it. Only this module's own
labels carry styles (passed as ``style=`` or as a ``Text``), never markup inside user text."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _literal(text: Any, style: str = "") -> Any:
    """``text`` as a Rich Text: printed as written, brackets included."""
    from rich.text import Text

    return Text("" if text is None else str(text), style=style)


def labelled(label: str, text: str, style: str, *, stderr: bool = False) -> None:
    """``label: text`` with the label styled and the text printed literally."""
    from rich.text import Text

    _console(stderr).print(Text.assemble((f"{label}:", style), " ", str(text)))


def error(message: str, hint: str | None, code: int) -> None:
    labelled("error", message, "bold red", stderr=True)
    if hint:
        labelled("fix", hint, "yellow", stderr=True)
    _console(stderr=True).print(_literal(f"(exit code {code}; add --debug for the traceback)", "dim"))


def info(text: str) -> None:
    _console().print(_literal(text))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
    from rich.table import Table

    t = Table(
        title=_literal(title, "bold"),
        caption=_literal(caption) if caption else None,
        header_style="bold #E8863A",
    )
    for col in columns:
        t.add_column(_literal(col), overflow="fold")
    for row in rows:
        t.add_row(*(_literal(v) for v in row))
    _console().print(t)


def key_values(title: str, pairs: Sequence[tuple[str, Any]]) -> None:
    table(title, ["", ""], [(k, v) for k, v in pairs])


class Progress:
    """Progress of one command's jobs. The core calls ``start(n)`` with the number of planned jobs
    (the bar's total) and ``advance(outcome)`` as each finishes. On a terminal: a bar with
    done/failed/degraded counts, rate and ETA on stderr. Elsewhere (cron), with ``log_jobs``: one
    quiet line per finished job on stderr. Off under --json."""

    def __init__(self, label: str, enabled: bool, log_jobs: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.log_jobs = log_jobs
        self.total: int | None = None
        self._bar: Any = None
        self._task: Any = None
        self._counts = {"ok": 0, "failed": 0, "degraded": 0}

    def start(self, total: int) -> None:
        self.total = total
        if not self.enabled or self._bar is not None or total <= 1 or not sys.stderr.isatty():
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed:.2f} jobs/s" if task.speed else "– jobs/s", style="cyan")

        self._bar = RichProgress(
            TextColumn("{task.description}", style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            RateColumn(),
            TimeRemainingColumn(),
            console=_console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, counts="")

    def advance(self, outcome: Any) -> None:
        if not self.enabled:
            return
        status = getattr(outcome, "status", "")
        key = (
            "failed" if status == "failed" else ("degraded" if status in ("degraded", "fallback", "blocked") else "ok")
        )
        self._counts[key] += 1
        if self._bar is not None:
            c = self._counts
            self._bar.update(
                self._task,
                advance=1,
                counts=f"[green]{c['ok']} ok[/] [red]{c['failed']} failed[/] [yellow]{c['degraded']} degraded[/]",
            )
        elif self.log_jobs:
            from datetime import UTC, datetime

            when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            note = f" ({outcome.reason})" if getattr(outcome, "reason", None) else ""
            sys.stderr.write(
                f"{when} {self.label}: {outcome.user_id} {outcome.target} {status} ${outcome.cost_usd:.4f}{note}\n"
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def progress(label: str, enabled: bool, log_jobs: bool = False) -> Iterator[Progress]:
    bar = Progress(label, enabled, log_jobs)
    try:
        yield bar
    finally:
        bar.close()


def _where(o: Any) -> str:
    """Where a job's image is: a path relative to the current folder when it lies inside it."""
    import os

    where = (o.image_url or "").removeprefix("file://") or o.served_path or ""
    if where.startswith(os.sep):
        relative = os.path.relpath(where)
        if not relative.startswith(".."):
            return relative
    return str(where)


def run_report(title: str, report: Any, *, per_job: bool) -> None:
    """A run's outcome on the terminal: per-job rows (one user, or --verbose), else a summary
    table by status with the failed jobs listed (at most 20). The totals follow as one sentence
    wrapped at the terminal's width (as a table caption it would wrap at the table's)."""
    from .units import money

    s = report.summary()
    totals = (
        f"{s['generated']} generated, {s['cached']} cached, {s['ingested']} ingested from spool, "
        f"{s['degraded']} degraded, {s['failed']} failed; cost {money(s['cost_usd'])}"
    )
    if s["planned"]:
        totals += f"; estimated {money(s['estimate_usd'])} for {s['planned']} job(s) (dry run: nothing spent)"
    if report.stopped:
        totals += f"; STOPPED: {report.stopped}"
    if s.get("run_id"):
        totals += f"; run {s['run_id']}"
    tick = s.get("tick")
    if tick:
        where = "at any hour" if tick["any_hour"] else f"in their {tick['window']} local window"
        totals += (
            f"; tick {tick['at']}: {tick['due']} due user(s) with an open window, {tick['in_window']} {where}, "
            f"{tick['served']} served, {tick['left']} left for a later tick, "
            f"{tick['rescheduled']} moved to their next night"
        )
        erasures = tick.get("erasures")
        if erasures:
            totals += f"; {len(erasures['finished'])} unfinished erasure(s) completed"
            totals += "".join(f" {alias}" for alias in erasures["finished"])
            if erasures["failed"]:
                totals += f", {erasures['failed']} failed again (left for the next run)"

    def row(o: Any) -> tuple[Any, ...]:
        cost = money(o.cost_usd) if o.status != "planned" else "~" + money(o.estimate_usd)
        return (o.user_id, o.target, o.status, cost, _where(o), o.reason or "")

    columns = ["user", "target", "status", "cost", "image", "note"]
    if per_job:
        table(title, columns, [row(o) for o in report.outcomes])
        info(totals)
        for o in report.outcomes:
            if o.message and o.status in ("generated", "cached", "ingested"):
                labelled(f"I-There to {o.user_id} ({o.target})", o.message, "bold #E8863A")
        return
    by_status: dict[str, list[Any]] = {}
    for o in report.outcomes:
        by_status.setdefault(o.status, []).append(o)
    table(
        f"{title}: {len(report.outcomes)} job(s)",
        ["status", "jobs", "cost", "estimate"],
        [
            (
                status,
                len(items),
                money(sum(o.cost_usd for o in items)),
                money(sum(o.estimate_usd for o in items)),
            )
            for status, items in sorted(by_status.items())
        ],
    )
    info(totals)
    info("(add --verbose for one line per job)")
    failed = [o for o in report.outcomes if o.status == "failed"]
    if failed:
        table("failed jobs", columns, [row(o) for o in failed[:20]], caption=f"{len(failed)} failed")

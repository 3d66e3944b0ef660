"""The only module that imports rich, and only when something is shown on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def error(message: str, hint: str | None, code: int) -> None:
    c = _console(stderr=True)
    c.print(f"[bold red]error:[/] {message}", markup=True)
    if hint:
        c.print(f"[yellow]fix:[/] {hint}")
    c.print(f"[dim](exit code {code}; add --debug for the traceback)[/]")


def info(text: str) -> None:
    _console().print(text)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
    from rich.table import Table

    t = Table(title=title, caption=caption, header_style="bold #E8863A", title_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    _console().print(t)


def key_values(title: str, pairs: Sequence[tuple[str, Any]]) -> None:
    table(title, ["", ""], [(k, v) for k, v in pairs])


class Advance:
    """What ``progress`` yields: call it with each finished job's outcome; ``planned(n)`` sizes
    the bar once the run knows its jobs (a nightly run learns them from the due index)."""

    def __init__(self, on_outcome: Callable[[Any], None], on_total: Callable[[int], None] | None = None) -> None:
        self._on_outcome = on_outcome
        self._on_total = on_total

    def __call__(self, outcome: Any) -> None:
        self._on_outcome(outcome)

    def planned(self, total: int) -> None:
        if self._on_total is not None:
            self._on_total(total)


@contextmanager
def progress(total: int | None, label: str, enabled: bool) -> Iterator[Advance]:
    """Yields an Advance that moves a bar with done/failed/degraded counts, rate and ETA (total
    None: sized later by ``planned``). Off (a no-op) under cron, with --json, or when stdout is
    not a terminal."""
    if not enabled:
        yield Advance(lambda outcome: None)
        return
    if not sys.stderr.isatty() or (total is not None and total <= 1):
        # Under cron: one quiet line per finished job on stderr (the report goes to stdout).
        from datetime import UTC, datetime

        def log(outcome: Any) -> None:
            when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            note = f" ({outcome.reason})" if getattr(outcome, "reason", None) else ""
            sys.stderr.write(
                f"{when} {label}: {outcome.user_id} {outcome.target} {outcome.status} ${outcome.cost_usd:.4f}{note}\n"
            )

        yield Advance(log)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:.2f} jobs/s" if task.speed else "– jobs/s", style="cyan")

    counts = {"ok": 0, "failed": 0, "degraded": 0}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        RateColumn(),
        TimeRemainingColumn(),
        console=_console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total, counts="")

        def advance(outcome: Any) -> None:
            status = getattr(outcome, "status", "")
            key = (
                "failed"
                if status == "failed"
                else ("degraded" if status in ("degraded", "fallback", "blocked") else "ok")
            )
            counts[key] += 1
            bar.update(
                task,
                advance=1,
                counts=f"[green]{counts['ok']} ok[/] [red]{counts['failed']} failed[/] "
                f"[yellow]{counts['degraded']} degraded[/]",
            )

        yield Advance(advance, lambda n: bar.update(task, total=n))

"""What the pipeline tells telemetry: a job finished, a run finished, a provider answered.

With metrics off (every CLI command but a nightly run asked for a metrics file, or a push) these
are one attribute test each; ``mirror serve`` and the nightly export switch metrics on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..jobs import Outcome, RunReport
    from ..models import ImageResult


class Sink(Protocol):
    def job_finished(self, outcome: Outcome) -> None: ...

    def run_finished(self, report: RunReport) -> None: ...

    def provider_answered(self, result: ImageResult) -> None: ...


_sink: Sink | None = None


def attach(sink: Sink | None) -> None:
    """Send the pipeline's events to ``sink`` (None: nowhere)."""
    global _sink
    _sink = sink


def job_finished(outcome: Outcome) -> None:
    if _sink is not None:
        _sink.job_finished(outcome)


def run_finished(report: RunReport) -> None:
    if _sink is not None:
        _sink.run_finished(report)


def provider_answered(result: ImageResult) -> None:
    if _sink is not None:
        _sink.provider_answered(result)


def attached() -> Sink | None:
    return _sink

"""Runs: start or resume one, execute its jobs through a pipeline (spool sweep, signals, batch
submission), record how it finished, poll a Batch API run, list runs."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import MirrorError, NotFoundError, UsageError, as_store_error
from ..pipeline import JobSpec, Outcome, Pipeline, RunReport
from ..stores.base import JobState, RunInfo
from ..telemetry.alerts import run_alerts
from ..wiring import Wiring
from .users import persona


def start_run(w: Wiring, command: str, params: dict[str, Any], resume: str | None) -> RunInfo:
    if resume:
        run = w.store.get_run(resume)
        if run is None:
            known = ", ".join(r.id for r in w.store.list_runs(5)) or "(none)"
            raise NotFoundError(f"Unknown run {resume!r}.", f"Recent runs: {known} (see 'mirror runs').")
        run.state = "running"
        w.store.update_run(run)
        return run
    run = RunInfo(
        id=w.now().strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6],
        command=command,
        created_at=w.now(),
        params=params,
    )
    w.store.create_run(run)
    return run


def finish_run(w: Wiring, run: RunInfo, report: RunReport) -> None:
    s = report.summary()
    run.counts = {k: s[k] for k in ("generated", "cached", "ingested", "degraded", "failed", "skipped")}
    run.state = "stopped" if report.stopped else ("finished" if not report.failed else "finished_with_failures")
    w.store.update_run(run)


@contextmanager
def _stop_on_signals(w: Wiring, pipeline: Pipeline) -> Iterator[None]:
    """SIGINT/SIGTERM stop the run gracefully when the command owns its process."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM) if w.owns_process else ():
        try:
            loop.add_signal_handler(sig, pipeline.request_stop, f"interrupted by {sig.name}")
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _run_with_spool(
    w: Wiring, pipeline: Pipeline, specs: list[JobSpec], run: RunInfo | None, skipped: dict[str, str] | None
) -> RunReport:
    swept: dict[tuple[str, str], Outcome] = {}
    # before the spool is swept: only jobs whose answer never arrived may have billed
    booked = await pipeline.note_interrupted(run)
    if w.owns_process:
        pipeline.spool.sweep_tmp()
        leftovers = await pipeline.ingest_leftovers(lambda uid: persona(w, uid))
        swept = {(o.user_id, o.request_key): o for o in leftovers}
    report = await pipeline.run_specs(specs, run, skipped)
    report.extra_may_have_billed_usd += booked
    # A planned job whose image was just ingested from the spool shows as a cache hit (or, when
    # image moderation hid it, as the fallback): report what really happened to it.
    for i, o in enumerate(report.outcomes):
        ingested = swept.pop((o.user_id, o.request_key), None)
        if ingested is not None and (o.status == "cached" or ingested.hidden is not None):
            report.outcomes[i] = ingested
    report.outcomes.extend(swept.values())
    return report


async def execute(
    w: Wiring,
    specs: list[JobSpec],
    *,
    dry_run: bool,
    run: RunInfo | None = None,
    max_cost: float | None = None,
    skipped: dict[str, str] | None = None,
) -> RunReport:
    """``skipped``: users left out for a reason of their own (named in the report)."""
    pipeline = w.pipeline(max_cost=max_cost)
    if w.on_planned is not None:
        w.on_planned(len(specs))
    if dry_run:
        return await pipeline.plan_only(specs, skipped)
    if w.settings.provider == "openai-batch":
        return await _submit_batch(w, pipeline, specs, run)
    with _stop_on_signals(w, pipeline):
        report = await _run_with_spool(w, pipeline, specs, run, skipped)
    if pipeline.store_failure is not None:
        report.store_error = pipeline.store_failure.message
    if run is not None:
        try:
            await w.store_calls(finish_run, w, run, report)
        except Exception as exc:  # the report still reaches the operator
            err = as_store_error(exc) or (exc if isinstance(exc, MirrorError) else None)
            if err is None:
                raise
            report.store_error = report.store_error or err.message
            report.stopped = (report.stopped or "finished") + f"; the run's final state was not saved ({err.message})"
    if run is not None and report.store_error is None:  # budget and failure-rate warnings, once each
        report.alerts = await w.store_calls(run_alerts, w.store, w.configs.limits, report, w.now())
    return report


async def sweep_spool(w: Wiring) -> list[Outcome]:
    """Store every paid image a crashed process left in the spool (a server does this once
    at start; CLI commands do it on every call)."""
    return await w.pipeline().ingest_leftovers(lambda uid: persona(w, uid))


async def _submit_batch(w: Wiring, pipeline: Pipeline, specs: list[JobSpec], run: RunInfo | None) -> RunReport:
    from ..batch import BatchRunner

    if run is None:
        run = start_run(w, "batch", {"via": "batch-api"}, None)
    run.params["via"] = "batch-api"  # how erasure finds the runs that hold uploaded files (an evolve's too)
    await pipeline.ingest_leftovers(lambda uid: persona(w, uid))
    runner = BatchRunner(pipeline, w.provider, lambda uid: persona(w, uid))  # type: ignore[arg-type]
    return await runner.submit(specs, run)


async def poll(
    w: Wiring, run_id: str, *, wait: bool = False, resubmit: bool = False, poll_s: float = 30.0
) -> RunReport:
    """Collect a Batch API run's results into the pipeline; optionally resubmit its failures."""
    from ..batch import BatchRunner

    run = await w.store_calls(w.store.get_run, run_id)
    if run is None:
        raise NotFoundError(f"Unknown run {run_id!r}.", "List runs with 'mirror runs'.")
    if "batches" not in run.params:
        raise UsageError(f"Run {run_id} did not go through the Batch API.", "Resume it with --resume instead.")
    runner = BatchRunner(w.pipeline(), w.provider, lambda uid: persona(w, uid))  # type: ignore[arg-type]
    return await runner.collect(run, wait=wait, poll_s=poll_s, resubmit=resubmit)


def runs(w: Wiring, limit: int = 20) -> list[RunInfo]:
    return w.store.list_runs(limit)


def run_detail(w: Wiring, run_id: str) -> tuple[RunInfo, list[JobState]]:
    run = w.store.get_run(run_id)
    if run is None:
        raise NotFoundError(f"Unknown run {run_id!r}.", "List runs with 'mirror runs'.")
    return run, w.store.job_states(run_id)

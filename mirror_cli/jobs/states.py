"""A run's job states: pending, in flight, done, degraded or failed, written as a job moves, so
an interrupted run can be resumed and `runs show` tells what happened to each job."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ..models import LedgerEvent
from ..stores.base import JobState
from .types import SKIPPED_TARGET, Outcome, RunReport

log = logging.getLogger("mirror.run")

if TYPE_CHECKING:
    from ..planner import Job
    from ..stores.base import RunInfo
    from .context import JobContext
    from .types import JobSpec


class JobStates:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    async def put(
        self,
        spec: JobSpec,
        state: Any,
        key: str = "",
        avatar_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        run = self.ctx.run
        if run:
            row = JobState(run.id, spec.job_id, spec.persona.id, spec.target, state, key, avatar_id, detail, None)
            await self._write(row)

    async def put_safe(
        self, spec: JobSpec, state: Any, key: str, detail: str | None, avatar_id: str | None = None
    ) -> None:
        # The store may be down: the run report still says what happened to the job.
        with contextlib.suppress(Exception):
            await self.put(spec, state, key, avatar_id, detail)

    async def in_flight(self, job: Job) -> None:
        """The request is about to leave: an interrupted run finds it here."""
        run = self.ctx.run
        if run:
            detail = f"request sent (estimate ${job.estimate_usd:.6f})"
            row = JobState(
                run.id, job.job_id, job.user_id, job.target, "in_flight", job.request_key, None, detail, None
            )
            await self._write(row)

    async def move(self, state: JobState, new: Any, detail: str) -> None:
        """Move a stored state on (best effort: a resume settles it again)."""
        with contextlib.suppress(Exception):
            row = JobState(
                state.run_id,
                state.job_id,
                state.user_id,
                state.target,
                new,
                state.request_key,
                state.avatar_id,
                detail,
                None,
            )
            await self._write(row)

    async def _write(self, row: JobState) -> None:
        row.updated_at = self.ctx.now()
        await self.ctx.io(self.ctx.store.put_job_state, row)

    async def skip_users(self, report: RunReport, skipped: dict[str, str], run: RunInfo | None) -> None:
        """Users left out for a reason of their own: named in the report, and (in a run) in its
        job states (`runs show`) and the ledger, once per run; a dry run only reports them."""
        ctx = self.ctx
        for uid, reason in skipped.items():
            report.outcomes.append(Outcome(uid, SKIPPED_TARGET, "skipped", reason=reason))
            report.skipped_users[uid] = reason
            log.warning("user %s skipped: %s", uid, reason)
            if run is None:
                continue
            line = LedgerEvent(
                ts=ctx.now(), user_id=uid, kind="skipped", target=SKIPPED_TARGET, run_id=run.id, detail=reason
            )
            with contextlib.suppress(Exception):  # the report names them whatever the store says
                await ctx.io(ctx.store.record_event, line, event_id=f"skipped:{run.id}:{uid}")
                row = JobState(
                    run.id, f"{uid}.{SKIPPED_TARGET}", uid, SKIPPED_TARGET, "skipped", "", None, reason, None
                )
                await self._write(row)

    async def done_before(self, run: RunInfo | None) -> tuple[set[str], bool]:
        """The jobs an earlier attempt of the run finished, and whether it had any job state."""
        if run is None:
            return set(), False
        states = await self.ctx.io(self.ctx.store.job_states, run.id)
        return {s.job_id for s in states if s.state in ("done", "degraded")}, bool(states)

    async def settle(self, run: RunInfo | None) -> None:
        """A finished run leaves no job pending or in flight: a job whose result was stored (for
        example ingested from the spool) is done, any other one failed."""
        ctx = self.ctx
        if run is None or ctx.stop_event.is_set():
            return
        for state in await ctx.io(ctx.store.job_states, run.id):
            if state.state not in ("pending", "in_flight"):
                continue
            entry = await ctx.io(ctx.store.cache_get, state.user_id, state.request_key) if state.request_key else None
            if entry is not None:
                await self.move(state, "done", "its image was stored (ingested from the spool)")
            else:
                await self.move(state, "failed", "not run in the run's final attempt")

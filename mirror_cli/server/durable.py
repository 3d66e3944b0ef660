"""Slow jobs that outlive their instance: a job answered 202 is written to the store (running,
with a lease its instance renews), and its answer is written there when it ends. A poll on any
instance reads it; a poll that finds the lease run out (its instance died or was stopped) takes
the job over - one poller at a time, through a store claim - and runs it again from its
parameters. Paying twice is impossible either way: the core's own claims, spool and cache dedupe
the paid work underneath, and a request that may have been billed is booked by them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ..clock import wall_clock
from ..stores.base import AppJob, Claim
from .jobs import Job, Jobs, Result
from .problems import ProblemError

log = logging.getLogger("mirror.serve")

Work = Callable[[], Awaitable[Result]]


class DurableJobs:
    def __init__(self, core: Any, jobs: Jobs, lease_s: float) -> None:
        self.core = core
        self.jobs = jobs
        self.lease_s = lease_s
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: set[asyncio.Task[None]] = set()
        self._follows: dict[str, asyncio.Task[None]] = {}

    def _record(self, job: Job) -> AppJob:
        now = wall_clock()
        return AppJob(
            id=job.id,
            owner=job.owner,
            kind=job.kind,
            key=job.key,
            params={k: v for k, v in job.params.items() if k != "photo"},  # a photo is never stored
            instance=self.instance,
            lease_until=now + timedelta(seconds=self.lease_s),
            created_at=now,
        )

    async def persist(self, job: Job) -> None:
        """Write the running job before its 202 leaves; keep its lease and write its answer."""
        if job.persisted:
            return
        job.persisted = True
        record = self._record(job)
        await self.core.store_calls(self.core.store.put_app_job, record)
        task = asyncio.create_task(self._follow(job, record), name=f"mirror-job-state-{job.id}")
        self._tasks.add(task)
        self._follows[job.id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._follows.get(job.id) is t:
                del self._follows[job.id]

        task.add_done_callback(done)

    async def settled(self, job: Job) -> None:
        """Wait for the job and for its answer to be written to the store (a queue worker acks then)."""
        await asyncio.shield(job.task)
        follow = self._follows.get(job.id)
        if follow is not None:
            await asyncio.shield(follow)

    async def _follow(self, job: Job, record: AppJob) -> None:
        every = max(0.05, self.lease_s / 3)
        while not job.done:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(job.task), every)
            if job.done:
                break
            record.lease_until = wall_clock() + timedelta(seconds=self.lease_s)
            with contextlib.suppress(Exception):  # a missed renewal only risks an early takeover
                await self.core.store_calls(self.core.store.put_app_job, record)
        result = job.result()
        record.state, record.status, record.body, record.headers = "done", result.status, result.body, result.headers
        for attempt in range(5):
            try:
                await self.core.store_calls(self.core.store.put_app_job, record)
                return
            except Exception as exc:
                log.warning("job %s: its answer could not be stored (attempt %d): %s", job.id, attempt + 1, exc)
                await asyncio.sleep(0.5 * (attempt + 1))

    async def stored(self, job_id: str) -> AppJob | None:
        found: AppJob | None = await self.core.store_calls(self.core.store.get_app_job, job_id)
        return found

    async def take_over(self, record: AppJob, work: Work | None) -> Job | None:
        """Run a job whose instance stopped renewing its lease; None when another poller has it."""
        now = wall_clock()
        claim = Claim(
            key=f"app-job/{record.id}",
            owner=self.instance,
            lease_until=now + timedelta(seconds=self.lease_s),
            created_at=now,
            info={"job_id": record.id},
        )
        result = await self.core.store_calls(self.core.store.claim, claim, now)
        if not result.acquired:
            return None
        log.info("job %s: taken over from %s", record.id, record.instance)
        run: Work = work or _lost(record)
        job, _ = self.jobs.submit(record.key, record.owner, record.kind, run, record.params, job_id=record.id)
        await self.persist(job)
        return job

    async def drain(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


def _lost(record: AppJob) -> Work:
    async def answer() -> Result:
        p = ProblemError(
            503,
            "job-lost",
            "Job lost",
            "The server running this job stopped before it finished, and the photo it was given is not kept.",
            "Send the original request again: whatever was already paid for is answered from the cache.",
            retry_after_s=1,
        )
        return Result(p.problem.status, p.problem.model_dump(exclude_none=True), p.headers())

    return answer

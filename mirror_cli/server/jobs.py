"""Generation jobs of one server process: identical requests share one job, slow jobs are polled.

A job is keyed by what it would make (user, command, stage, progress, photo digest). While it
runs, a second identical request joins it instead of starting another: twenty taps make one
image and pay once. (Across processes, the store's own claims and cache stop a second payment.)
A job runs as a task of its own, so a client that hangs up does not cancel a paid generation,
and on shutdown the server waits for every running job to finish and store its image.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

KEEP_FINISHED_S = 3600.0
KEEP_MAX = 10_000


@dataclass
class Result:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    id: str
    key: str
    owner: str
    kind: str
    created: float
    task: asyncio.Task[Result]
    finished: float | None = None
    params: dict[str, Any] = field(default_factory=dict)  # what another instance needs to run it again
    persisted: bool = False  # its state is in the store (it was answered 202)

    @property
    def done(self) -> bool:
        return self.task.done()

    def result(self) -> Result:
        return self.task.result()


class Jobs:
    def __init__(self) -> None:
        self._running: dict[str, Job] = {}
        self._all: OrderedDict[str, Job] = OrderedDict()
        self.accepting = True

    def submit(
        self,
        key: str,
        owner: str,
        kind: str,
        work: Callable[[], Awaitable[Result]],
        params: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> tuple[Job, bool]:
        """The running job for ``key`` (joined=True), or a new one running ``work`` (``job_id``:
        a job taken over from another instance keeps its id)."""
        current = self._running.get(key)
        if current is not None and not current.done:
            return current, True
        self._forget_old()
        job_id = job_id or uuid.uuid4().hex
        task: asyncio.Task[Result] = asyncio.create_task(_call(work), name=f"mirror-job-{job_id}")
        job = Job(job_id, key, owner, kind, time.time(), task, params=params or {})
        self._running[key] = job
        self._all[job_id] = job

        def finished(_: asyncio.Task[Result]) -> None:
            job.finished = time.time()
            if self._running.get(key) is job:
                del self._running[key]

        task.add_done_callback(finished)
        return job, False

    def get(self, job_id: str) -> Job | None:
        return self._all.get(job_id)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def wait(self, job: Job, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job (never cancelling it); True when done."""
        if not job.done and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(job.task), timeout)
        return job.done

    async def drain(self, timeout: float) -> int:
        """Stop accepting and wait for the running jobs; returns how many were still running at the end."""
        self.accepting = False
        tasks = [j.task for j in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return sum(1 for t in tasks if not t.done())

    def _forget_old(self) -> None:
        cutoff = time.time() - KEEP_FINISHED_S
        while self._all:
            oldest = next(iter(self._all.values()))
            expired = oldest.finished is not None and oldest.finished < cutoff
            if not expired and len(self._all) < KEEP_MAX:
                break
            if not oldest.done:  # never forget a running job; stop trimming here
                break
            self._all.popitem(last=False)


async def _call(work: Callable[[], Awaitable[Result]]) -> Result:
    return await work()

"""The app's slow jobs on the job queue. A generation that cannot answer within serve_wait_s is
written to the store (server/durable.py) and published (ordering key = the user, attributes =
its request key); the instance that answered 202 keeps running it, and the message is what makes
it finish when that instance cannot (killed, stopped, or a Cloud Run instance whose CPU is
throttled after its answer).

Whoever receives the message - `mirror worker`'s pull loop, the push endpoint, or the worker
inside `mirror serve` on one machine - acks it only once the job's answer is in the store:

- answered already: ack;
- running in this process: wait for it, then ack;
- running elsewhere under a live lease: give it back until that lease ends;
- its instance is dead or its lease is over: take it over (one taker, through a store claim),
  run it from its stored parameters, write the answer, ack.

Paying twice is impossible on every path: the core's claims, spool and cache dedupe the paid
work, and a request a dead instance may have had billed is booked by the claim's take-over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..clock import wall_clock
from ..jobs import Outcome, owner_dead
from ..stores.queue import QueueMessage
from .jobs import Job

if TYPE_CHECKING:
    from ..settings import Settings
    from .service import Service

log = logging.getLogger("mirror.serve")

APP_JOB = "app-job"


def app_job_message(job: Job) -> dict[str, Any]:
    return {"kind": APP_JOB, "job_id": job.id, "user_id": job.owner, "job": job.kind}


class QueuedJobs:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def publish(self, job: Job) -> None:
        """Publish a job answered 202. A failure is logged, not answered: the job still runs here,
        and a poll on any instance takes it over if this one dies."""
        core = self.svc.core
        try:
            await core.store_calls(
                core.queue.publish, app_job_message(job), job.owner, {"request_key": job.key, "job": job.id}
            )
        except Exception as exc:
            log.warning("job %s: not published to the queue: %s", job.id, type(exc).__name__)

    async def outage(self, o: Outcome, started: float, regenerate: bool) -> dict[str, Any]:
        """The design's degrade: the stage's fallback picture now (``is_fallback``), and the job
        published to be made later, when the provider answers again."""
        await self.retry_later(o, regenerate)
        served = Outcome(
            o.user_id,
            o.target,
            "fallback",
            reason="The image provider is unavailable: the stage's fallback picture stands in, and the avatar is "
            "made as soon as the provider answers again (ask again later).",
        )
        return self.svc.avatar(served, started)

    async def retry_later(self, outcome: Outcome, regenerate: bool) -> None:
        """A job the provider failed (an outage): made by a worker later, with its backoff."""
        from ..worker import job_message

        core = self.svc.core
        body = job_message(outcome.user_id, outcome.target, regenerate)
        attributes = {"request_key": outcome.request_key or "-", "job": f"{outcome.user_id}.{outcome.target}"}
        try:
            await core.store_calls(core.queue.publish, body, outcome.user_id, attributes)
        except Exception as exc:
            log.warning("%s/%s: the retry was not published: %s", outcome.user_id, outcome.target, type(exc).__name__)

    async def handle(self, message: QueueMessage) -> float | None:
        """Run one app job from the queue: None once its answer is stored (ack), else the seconds
        after which to deliver it again."""
        svc = self.svc
        job_id = str(message.body.get("job_id", ""))[:64]
        record = await svc.durable.stored(job_id)
        if record is None:
            log.warning("queued job %s is not in the store (erased?); dropped", job_id)
            return None
        if record.state == "done":
            return None
        here = svc.jobs.get(job_id)
        if here is not None and here.persisted:  # this process runs it: its answer is written here
            return await self._answered(here)
        # a live instance renews its lease every third of it: a worker waits one more lease
        # before it takes over (a renewal late on a busy machine is not a death), unless the
        # instance is a process of this host that is gone
        grace = svc.durable.lease_s
        left = (record.lease_until - wall_clock()).total_seconds() + grace
        if left >= 0 and not owner_dead(record.instance):
            return max(1.0, left + 0.5)
        taken = await svc.durable.take_over(record, svc.guarded_work(record.kind, record.params))
        if taken is None:
            return max(1.0, svc.durable.lease_s)  # another worker or poller took it
        return await self._answered(taken)

    async def _answered(self, job: Job) -> float | None:
        await self.svc.durable.settled(job)
        stored = await self.svc.durable.stored(job.id)
        if stored is None or stored.state != "done":
            return 0.0  # its answer did not reach the store: run again (it answers from the cache)
        return None


class EmbeddedWorker:
    """The queue worker inside `mirror serve` (serve_worker; auto: with the embedded local queue),
    so one machine needs nothing else: it shares the server's jobs, so a job running here is
    awaited, not run twice."""

    def __init__(self, svc: Service) -> None:
        from ..worker import Worker

        self.worker = Worker(svc.core, svc.core.queue, batch=8, handlers={APP_JOB: svc.queued.handle})
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run(idle_s=0.5), name="mirror-embedded-worker")

    async def stop(self, timeout: float) -> None:
        self.worker.stop.set()
        if self.task is not None:
            await asyncio.wait([self.task], timeout=timeout)


def wants_embedded_worker(settings: Settings) -> bool:
    return settings.serve_worker == "on" or (settings.serve_worker == "auto" and settings.queue == "local")

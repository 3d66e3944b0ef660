"""Queue workers: each message is one avatar job (user + target), run through the same core as
every other edge. A message for a user who was erased (or is being erased) is acked without
work: Pub/Sub cannot delete it, so the worker drops it. A message is acked only once its job
reached an end that a retry would not change (stored, cached, degraded to a fallback, refused
by a limit or bad data); a job that failed for a reason that may pass (provider outage, store
unreachable, held elsewhere) is given back and redelivered, and set aside by the queue after
its max attempts. Redelivery never pays twice: the core's claims, spool and cache dedupe paid
work.

``enqueue_due`` is the nightly tick's other half: it publishes the due jobs instead of running
them, so workers scale out beyond fixed shards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import MirrorError, UsageError
from .stores.base import ErasureStore
from .stores.queue import JobQueue, QueueMessage

if TYPE_CHECKING:
    from .core import Mirror, Shard

log = logging.getLogger("mirror.worker")

MIN_BACKOFF_S = 10.0  # a job given back is delivered again after 10 s, 20 s, 40 s ... (Pub/Sub's retry policy)
MAX_BACKOFF_S = 600.0
FINAL = ("generated", "cached", "ingested", "degraded", "fallback", "blocked", "skipped")


@dataclass
class WorkerStats:
    acked: int = 0
    retried: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"acked": self.acked, "retried": self.retried, "outcomes": dict(self.outcomes)}


def job_message(uid: str, target: str, regenerate: bool = False) -> dict[str, Any]:
    return {"kind": "generate", "user_id": uid, "target": target, "regenerate": regenerate}


async def enqueue_due(core: Mirror, queue: JobQueue, shard: Shard | None = None, any_hour: bool = False) -> int:
    """Publish every due job of this tick (ordering key = user, attributes = request key)."""
    plan = await core.store_calls(core.plan_tick, shard, any_hour=any_hour)
    planner = core.planner()
    n = 0
    for spec in plan.specs:
        job = await core.store_calls(planner.plan, spec.persona, spec.progress, spec.target)
        await core.store_calls(
            queue.publish,
            job_message(spec.persona.id, spec.target),
            spec.persona.id,
            {"request_key": job.request_key, "job": spec.job_id},
        )
        n += 1
    await core.store_calls(core.nightly_tick().hand_off, plan)  # published: done for the night
    return n


def user_erased(store: object, uid: str) -> bool:
    """Whether ``uid`` has a tombstone (an erasure done or under way) in ``store``; an id that is
    not one is left to the job, which refuses it by name."""
    if not isinstance(store, ErasureStore) or not uid:
        return False
    try:
        return store.is_erased(uid)
    except UsageError:
        return False


class Worker:
    def __init__(self, core: Mirror, queue: JobQueue, *, batch: int = 4, ack_deadline_s: float | None = None) -> None:
        self.core = core
        self.queue = queue
        self.batch = batch
        self.ack_deadline_s = ack_deadline_s or core.configs.limits.claims.lease_s
        self.stats = WorkerStats()
        self.stop = asyncio.Event()

    async def run_once(self) -> int:
        """Pull one batch and run it (users concurrently); the number of messages pulled."""
        messages: list[QueueMessage] = await self.core.store_calls(self.queue.pull, self.batch, self.ack_deadline_s)
        await asyncio.gather(*(self._handle(m) for m in messages))
        return len(messages)

    async def run(self, *, idle_s: float = 1.0, until_empty: bool = False) -> WorkerStats:
        while not self.stop.is_set():
            if await self.run_once() == 0:
                if until_empty:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), idle_s)
        return self.stats

    async def _handle(self, message: QueueMessage) -> None:
        final = await self._run(message)
        if final:
            await self.core.store_calls(self.queue.ack, message)
            self.stats.acked += 1
        else:
            backoff = min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (message.attempts - 1))
            await self.core.store_calls(self.queue.nack, message, backoff)
            self.stats.retried += 1

    async def _run(self, message: QueueMessage) -> bool:
        body = message.body
        if await self.core.store_calls(user_erased, self.core.store, str(body.get("user_id", ""))):
            # a message published before the user was erased (Pub/Sub cannot delete it): dropped
            self._count("erased")
            return True
        try:
            report = await self.core.agenerate(
                [str(body["user_id"])], str(body["target"]), regenerate=bool(body.get("regenerate"))
            )
        except MirrorError as err:
            # one user's bad data (unknown user, stage, limit of regenerations) never clogs the queue
            log.warning("job %s: %s", message.id, err.message)
            self._count("refused")
            return True
        if report.stopped:
            self._count("stopped")
            return False
        final = True
        for o in report.outcomes:
            self._count(o.status)
            if o.limit:
                continue  # a cap reached: the next tick publishes it again when it is due
            if o.status not in FINAL:
                final = False
        return final

    def _count(self, status: str) -> None:
        self.stats.outcomes[status] = self.stats.outcomes.get(status, 0) + 1

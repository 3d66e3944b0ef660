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
from collections.abc import Awaitable, Callable
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


# A handler of one kind of message: None when the message is done (acked), else the seconds
# after which it is to be delivered again (0: the worker's own backoff).
Handler = Callable[[QueueMessage], Awaitable[float | None]]


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
    def __init__(
        self,
        core: Mirror,
        queue: JobQueue,
        *,
        batch: int = 4,
        ack_deadline_s: float | None = None,
        handlers: dict[str, Handler] | None = None,
    ) -> None:
        self.core = core
        self.queue = queue
        self.batch = batch
        self.ack_deadline_s = ack_deadline_s or core.configs.limits.claims.lease_s
        self.stats = WorkerStats()
        self.stop = asyncio.Event()
        # the app's 202 jobs ("app-job") are run by the server's handler (server/queued.py)
        self.handlers: dict[str, Handler] = {"generate": self._generate, **(handlers or {})}

    async def run_once(self) -> int:
        """Pull one batch and run it (users concurrently); the number of messages pulled."""
        messages: list[QueueMessage] = await self.core.store_calls(self.queue.pull, self.batch, self.ack_deadline_s)
        await asyncio.gather(*(self._handle(m) for m in messages))
        return len(messages)

    async def run(self, *, idle_s: float = 1.0, until_empty: bool = False) -> WorkerStats:
        """Keep up to ``batch`` messages running: a slot that frees is filled at once (one slow job
        never holds up the others); on stop, the running ones finish first."""
        running: set[asyncio.Task[None]] = set()
        await self.core.store_calls(self._warm)
        stopping = asyncio.create_task(self.stop.wait())
        try:
            while not self.stop.is_set():
                free = self.batch - len(running)
                got: list[QueueMessage] = []
                if free > 0:
                    got = await self.core.store_calls(self.queue.pull, free, self.ack_deadline_s)
                for m in got:
                    task = asyncio.create_task(self._handle(m), name=f"mirror-message-{m.id}")
                    running.add(task)
                    task.add_done_callback(running.discard)
                if got and len(got) == free:
                    continue  # more may be ready: fill the slots
                if not running and not got:
                    if until_empty:
                        break
                    await asyncio.wait([stopping], timeout=idle_s)
                elif running:
                    await asyncio.wait([*running, stopping], timeout=idle_s, return_when=asyncio.FIRST_COMPLETED)
            if running:
                await asyncio.wait(list(running))
        finally:
            stopping.cancel()
        return self.stats

    def _warm(self) -> None:
        """Make the provider's client (the SDK's import and set-up take a second or more) before
        the first start slot is taken: a first request that reaches the provider late would be
        bunched with the next process's, over the shared images-per-minute limit."""
        with contextlib.suppress(Exception):
            getattr(self.core.provider, "client", None)

    async def _extend(self, message: QueueMessage) -> None:
        """Keep a running message invisible: its ack deadline moved on every third of it (a
        redelivery while it runs would only wait for it, but costs a slot)."""
        every = max(0.05, self.ack_deadline_s / 3)
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await self.core.store_calls(self.queue.nack, message, self.ack_deadline_s)

    async def _handle(self, message: QueueMessage) -> None:
        keep = asyncio.create_task(self._extend(message))
        try:
            try:
                later = await self.handle(message)
            finally:
                keep.cancel()
            if later is None:
                await self.core.store_calls(self.queue.ack, message)
                self.stats.acked += 1
            else:
                await self.core.store_calls(self.queue.nack, message, later or backoff_s(message.attempts))
                self.stats.retried += 1
        except Exception:  # not acked: delivered again after its ack deadline
            log.exception("message %s: failed", message.id)
            self.stats.retried += 1

    async def handle(self, message: QueueMessage) -> float | None:
        """Run one message: None when it is done (to be acked), else when to deliver it again."""
        handler = self.handlers.get(str(message.body.get("kind")))
        if handler is None:  # a worker without the server's handler: a worker that has it takes it
            log.warning("message %s: no handler for %r here; given back", message.id, message.body.get("kind"))
            self._count("unhandled")
            return 0.0
        try:
            return await handler(message)
        except MirrorError as err:  # a store outage, say: it may pass
            log.warning("message %s: %s", message.id, err.message)
            self._count("failed")
            return 0.0

    async def _generate(self, message: QueueMessage) -> float | None:
        return None if await self._run(message) else 0.0

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


def backoff_s(attempts: int) -> float:
    """The wait before a given-back message is delivered again: 10 s, 20 s, 40 s ... 10 min."""
    return float(min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2.0 ** max(0, attempts - 1)))

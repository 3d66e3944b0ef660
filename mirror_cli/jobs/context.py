"""What the steps of a job share within one pipeline: the back-ends, the clocks, who owns the
claims, and the run's state (its record, the stop flag and the first store failure)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..clock import Clock
from ..errors import StoreError
from ..models import LedgerEvent
from ..pacing import RateLimiter, RetryStats

if TYPE_CHECKING:
    from ..config import ConfigSet
    from ..fallbacks import FallbackSet
    from ..planner import Job, Planner
    from ..providers.base import ImageProvider
    from ..spool import Spool
    from ..stores.base import RunInfo, Store
    from ..stores.calls import StoreCalls


@dataclass
class JobContext:
    configs: ConfigSet
    store: Store
    io: StoreCalls  # every store call from a coroutine: off the event loop, with a deadline
    provider: ImageProvider
    planner: Planner
    spool: Spool
    fallbacks: FallbackSet
    now: Clock  # the core's clock: ledger lines, records, reservations
    wall: Clock  # the machine's time: leases are read by other processes
    owner: str  # who holds this pipeline's claims: host, process and a nonce
    limiter: RateLimiter | None = None
    stats: RetryStats = field(default_factory=RetryStats)
    run: RunInfo | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None
    store_failure: StoreError | None = None  # the first store failure that stopped the run

    async def book(self, job: Job, kind: Any, *, event_id: str | None = None, **fields: Any) -> bool:
        """Write one ledger line about ``job`` at the core's time, in this run (idempotent by
        ``event_id`` when given); False when that id was booked before."""
        line = LedgerEvent(
            ts=self.now(),
            user_id=job.user_id,
            kind=kind,
            target=job.target,
            request_key=job.request_key,
            run_id=self.run_id(),
            **fields,
        )
        return await self.io(self.store.record_event, line, event_id=event_id)

    def run_id(self) -> str | None:
        return self.run.id if self.run else None

    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

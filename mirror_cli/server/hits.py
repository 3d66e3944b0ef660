"""Cache hits of the server, counted in memory and booked in batches.

A cached answer writes nothing: each hit is added to a count per (user, target, avatar, UTC day)
here, and the counts reach the usage ledger as ``cache_hit`` lines carrying ``count`` — every
``flush_s`` seconds and once more when the server stops gracefully (after its jobs drained). A
line's event id is fixed when it is first taken for writing, so a write that failed (or timed
out after succeeding) is retried under the same id: a hit is booked once, never lost while the
process lives. What a killed process had not flushed yet (at most ``flush_s`` of hits) is lost:
hits cost nothing, so no money depends on them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..clock import Clock
from ..models import AvatarRecord, LedgerEvent
from ..stores.base import LedgerStore

log = logging.getLogger("mirror.serve")

StoreCall = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class _Key:
    uid: str
    target: str
    avatar_id: str
    request_key: str
    provider: str
    model: str
    day: str


class HitCounter:
    def __init__(self, store: Callable[[], LedgerStore], io: StoreCall, clock: Clock) -> None:
        """``store``: the ledger (opened on first use); ``io``: how a blocking store call is
        awaited (the core's ``store_calls``)."""
        self.store = store
        self.io = io
        self.clock = clock
        self._instance = uuid.uuid4().hex[:12]
        self._seq = 0
        self._counts: dict[_Key, tuple[datetime, int]] = {}  # first hit's time, hits
        self._unsent: list[tuple[str, LedgerEvent]] = []  # taken for writing, not yet written
        self._flushing = asyncio.Lock()

    def add(self, record: AvatarRecord, target: str) -> None:
        """One hit on ``record`` (answered for ``target``): memory only, no I/O."""
        now = self.clock()
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        key = _Key(record.user_id, target, record.id, record.request_key, record.provider, record.model, day)
        first, n = self._counts.get(key, (now, 0))
        self._counts[key] = (first, n + 1)

    @property
    def pending(self) -> int:
        """Hits counted and not yet booked."""
        return sum(n for _, n in self._counts.values()) + sum(e.count for _, e in self._unsent)

    async def flush(self) -> int:
        """Book every counted hit (one ledger line per user, target, avatar and day); returns the
        hits booked. A failed write keeps its line for the next flush."""
        async with self._flushing:
            counts, self._counts = self._counts, {}
            for key, (first, n) in counts.items():
                self._seq += 1
                event = LedgerEvent(
                    ts=first,
                    user_id=key.uid,
                    kind="cache_hit",
                    target=key.target,
                    request_key=key.request_key,
                    avatar_id=key.avatar_id,
                    provider=key.provider,
                    model=key.model,
                    count=n,
                )
                self._unsent.append((f"hits-{self._instance}-{self._seq}", event))
            if not self._unsent:
                return 0
            batch, self._unsent = self._unsent, []
            written = 0
            try:
                written = await self.io(self._write, batch)
            finally:  # also when the call ran past its deadline: retried under the same ids
                self._unsent = batch[written:] + self._unsent
            return sum(e.count for _, e in batch[:written])

    def _write(self, batch: list[tuple[str, LedgerEvent]]) -> int:
        """Write the lines in order; how many were written before the first failure."""
        for i, (event_id, event) in enumerate(batch):
            try:
                self.store().record_event(event, event_id=event_id)  # a repeated id is booked once
            except Exception as exc:
                log.warning("cache hits not booked yet (%d line(s) kept for the next flush): %s", len(batch) - i, exc)
                return i
        return len(batch)

    async def run(self, every_s: float) -> None:
        """Flush every ``every_s`` seconds until cancelled (the final flush is the caller's)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.flush()
            except Exception:  # a store call past its deadline: the lines stay unsent
                log.exception("flushing cache hits failed")

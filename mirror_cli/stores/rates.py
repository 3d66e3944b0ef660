"""Rates shared by every process through the store: one record per bucket holding its GCRA
"theoretical arrival time" (TAT). Starts are ``interval_s`` apart on average and up to ``burst``
may start at once; a caller either reserves a start (maybe in the future: it waits, then starts)
or is told how long until one would be free. Both stores run ``gcra`` inside one atomic update
of the bucket's record, so workers on any number of machines share one limit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RateTaken:
    taken: bool  # a start is reserved (at now + wait_s)
    wait_s: float  # taken: how long to wait before starting; not taken: until one is free


def gcra(tat: float | None, now: float, interval_s: float, burst: int, max_wait_s: float) -> tuple[RateTaken, float]:
    """One step of the generic cell rate algorithm: (the answer, the bucket's new TAT)."""
    tat = now if tat is None else max(tat, now)
    start = max(now, tat - (max(1, burst) - 1) * interval_s)
    wait = start - now
    if wait > max_wait_s:
        return RateTaken(False, wait), tat
    return RateTaken(True, wait), tat + interval_s


def ip_bucket(address: str) -> str:
    """A bucket per client address that never stores the address itself."""
    return "ip." + hashlib.sha256(f"mirror-rate:{address}".encode()).hexdigest()[:24]

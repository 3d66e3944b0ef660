"""The per-signed-in-user request rate, kept in the store (``take_rate``, one GCRA bucket per
user) so every server instance shares one limit: ``per_minute`` requests a minute, bursts up to
the same. The bucket is a hash of the uid (the uid itself is never a record's name).

The one in-process shortcut only ever refuses: a refusal from the store says no request can
start before ``wait_s`` (a bucket's TAT never moves back), so until then this instance refuses
without asking the store again. It can never allow a request the store would not.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from .problems import ProblemError

log = logging.getLogger("mirror.serve")

_MAX_REFUSALS = 100_000  # remembered refusals; the oldest are forgotten past this (they only save a store call)


def user_bucket(uid: str) -> str:
    """A bucket per signed-in user, named by a hash of the uid."""
    return "user." + hashlib.sha256(f"mirror-rate:{uid}".encode()).hexdigest()[:24]


class UserRates:
    def __init__(self, core: Any, per_minute: int) -> None:
        self.core = core
        self.per_minute = per_minute
        self._refused_until: dict[str, float] = {}

    async def take(self, uid: str) -> None:
        """One request of ``uid``, or a 429 problem; the store unreachable lets it through (logged)."""
        from ..clock import wall_clock
        from ..errors import MirrorError

        now = wall_clock().timestamp()
        until = self._refused_until.get(uid)
        if until is not None and now < until:
            self._refuse(until - now)
        try:
            got = await self.core.store_calls(
                self.core.store.take_rate, user_bucket(uid), 60.0 / self.per_minute, self.per_minute, 0.0, now
            )
        except MirrorError as err:  # an outage must not lock signed-in users out: serve, as generate degrades
            log.warning("the user's request rate could not be taken: %s", err.message)
            return
        if got.taken:
            self._refused_until.pop(uid, None)
            return
        if len(self._refused_until) >= _MAX_REFUSALS:
            self._refused_until = {k: v for k, v in self._refused_until.items() if v > now}
            if len(self._refused_until) >= _MAX_REFUSALS:
                self._refused_until.clear()
        self._refused_until[uid] = now + got.wait_s
        self._refuse(got.wait_s)

    def _refuse(self, wait_s: float) -> None:
        wait = max(1, math.ceil(wait_s))
        raise ProblemError(
            429,
            "rate-limited",
            "Too many requests",
            f"More than {self.per_minute} requests a minute from this user.",
            f"Wait {wait} s (Retry-After) and retry; the app should not retry in a tight loop.",
            retry_after_s=wait,
        )

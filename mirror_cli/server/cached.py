"""The cached answer of ``POST /avatar/generate``: a request for an avatar the user already has
is answered from two reads by key (the profile, the user's newest good avatar of the target),
with no write, no job and no ledger line of its own (the hit is counted in memory,
``hits.HitCounter``), and a signed URL that is reused while more than half its lifetime is left.

Anything the cached path cannot answer exactly as the full path would — no profile, no avatar,
another look, an avatar that is flagged or hidden, a regenerate — goes the full path
(``Service.run``), which decides as before.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from ..clock import Clock, today
from ..core import Mirror
from ..errors import MirrorError
from ..jobs import Outcome
from ..models import JobTimings, Progress
from ..planner import Planner
from ..telemetry import hooks
from .hits import HitCounter


class SignedUrls:
    """Signed URLs of images, each reused while more than half of its lifetime is left (a URL
    handed out always has at least ``ttl_s / 2`` to live), by the core's clock; at most
    ``max_entries`` kept (the least recently signed go first)."""

    def __init__(self, sign: Callable[[str], str], ttl_s: float, clock: Clock, max_entries: int = 100_000) -> None:
        self.sign = sign
        self.reuse = timedelta(seconds=ttl_s / 2)
        self.clock = clock
        self.max_entries = max_entries
        self._urls: OrderedDict[str, tuple[datetime, str]] = OrderedDict()

    def __call__(self, ref: str) -> str:
        now = self.clock()
        hit = self._urls.get(ref)
        if hit is not None and hit[0] <= now < hit[0] + self.reuse:
            return hit[1]
        url = self.sign(ref)  # signed after reading the clock: its lifetime starts no earlier
        self._urls[ref] = (now, url)
        self._urls.move_to_end(ref)
        while len(self._urls) > self.max_entries:
            self._urls.popitem(last=False)
        return url


class CachedGenerate:
    def __init__(self, core: Mirror, urls: SignedUrls, hits: HitCounter) -> None:
        self.core = core
        self.urls = urls
        self.hits = hits
        self._planner: tuple[date, Planner] | None = None

    def planner(self) -> Planner:
        """One planner a day (it checks the model's shutdown date against the day)."""
        day = today(self.core.now)
        if self._planner is None or self._planner[0] != day:
            self._planner = (day, self.core.planner())
        return self._planner[1]

    async def answer(self, uid: str, target: str, progress: Progress | None) -> dict[str, Any] | None:
        """The response body of a cache hit, the same as the full path's; None on anything else."""
        started = time.perf_counter()
        core = self.core
        try:
            record = await core.store_calls(core.cached_avatar, self.planner(), uid, target, progress)
        except MirrorError:  # the store failing, a model shut down: the full path answers as it did
            return None
        if record is None:
            return None
        self.hits.add(record, target)
        elapsed = time.perf_counter() - started
        timings = JobTimings(queue_wait_s=0.0, total_s=round(elapsed, 6))
        hooks.job_finished(  # the metrics count it as the full path's cache hit
            Outcome(uid, target, "cached", record=record, served_path=record.image_path, timings=timings)
        )
        return {
            "avatar_id": record.id,
            "image_url": self.urls(record.image_path),
            "ithere_message": record.message,
            "cached": True,
            "generation_time": round(elapsed, 3),
            "cost": 0.0,
            "status": "cached",
            "evolution_stage": record.stage,
            "target": target,
            "reason": None,
            "is_fallback": False,  # the user's own image (a hidden one goes the full path)
        }

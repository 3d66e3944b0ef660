"""Blocking store calls, awaited from async code without blocking the event loop.

Both back-ends are synchronous (SQLite; the Firestore and Cloud Storage clients). The pipeline
awaits their methods through ``StoreCalls``: each call runs in a small thread pool of its own, so
concurrent jobs overlap their store I/O, and each has a deadline, so a stalled server becomes a
clear StoreError (the run stops, resumable) instead of a hang. The back-ends also put a timeout
on every RPC; the deadline here is the outer bound for a method that makes several.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ..errors import StoreError

P = ParamSpec("P")
T = TypeVar("T")


class StoreCalls:
    def __init__(self, workers: int = 8, deadline_s: float = 60.0) -> None:
        self.deadline_s = deadline_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="store")

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, self.deadline_s)
        except TimeoutError:
            name = getattr(fn, "__name__", "a store call")
            raise StoreError(
                f"The store did not answer within {self.deadline_s:.0f} s ({name}).",
                "Check the network (or the emulators); paid images stay in the spool and the run can be resumed.",
            ) from None

    def close(self) -> None:
        # A call stuck past its deadline must not keep the process alive.
        self._pool.shutdown(wait=False, cancel_futures=True)

"""Blocking store calls, awaited from async code without blocking the event loop.

Both back-ends are synchronous (SQLite; the Firestore and Cloud Storage clients). The pipeline
awaits their methods through ``StoreCalls``: each call runs in a small pool of threads of its own,
so concurrent jobs overlap their store I/O, and each has a deadline (the store's timeout plus its
retry budget, both in the settings), so a stalled server becomes a clear StoreError (the run stops,
resumable) instead of a hang.

A deadline that passes means the store is stalled for everybody: the calls waiting on it fail at
once with the same error, and so does every call made during the next deadline's length (the
writes on the way out of a run), so a stalled store ends a run within one deadline, not one per
call left. The pool's threads are daemons: a call stuck in a stalled RPC never keeps the process
from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar, cast

from ..errors import StoreError, as_store_error

P = ParamSpec("P")
T = TypeVar("T")


class DaemonPool(Executor):
    """A fixed pool of daemon threads: what ThreadPoolExecutor is, minus the join at exit."""

    def __init__(self, workers: int, name: str = "store") -> None:
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._workers, self._name = max(1, workers), name
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the store's call pool is closed")
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            if len(self._threads) < self._workers:  # one more thread per call, up to the pool's size
                t = threading.Thread(target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
        return future

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._work.put(None)
        if wait:
            for t in threads:
                t.join()


class StoreCalls:
    def __init__(self, workers: int = 8, deadline_s: float = 60.0, stall_s: float | None = None) -> None:
        """``deadline_s``: the most one call may take; ``stall_s``: a call that fails with a store
        error after this long (its own timeout spent) means a stalled store too."""
        self.deadline_s = deadline_s
        self.stall_s = stall_s if stall_s is not None else deadline_s
        self._pool = DaemonPool(workers)
        self._lock = threading.Lock()
        self._down: StoreError | None = None
        self._down_until = 0.0
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = set()

    @property
    def down(self) -> StoreError | None:
        """The stall a call ran into, while calls fail at once because of it (else None)."""
        with self._lock:
            return self._down if time.monotonic() < self._down_until else None

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        stalled = self.down
        if stalled is not None:
            raise StoreError(stalled.message, stalled.hint)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        work: asyncio.Future[Any] = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        tripped: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._waiting.add((loop, tripped))
        try:
            done, _ = await asyncio.wait({work, tripped}, timeout=self.deadline_s, return_when="FIRST_COMPLETED")
        finally:
            with self._lock:
                self._waiting.discard((loop, tripped))
            if not tripped.done():
                tripped.cancel()
        if work in done:
            failure = work.exception()
            if failure is None:
                return cast(T, work.result())
            error = as_store_error(failure)
            if error is not None and time.monotonic() - started >= self.stall_s:
                self._trip(error)  # it spent its whole timeout failing: the store is stalled
            raise failure
        work.add_done_callback(_consume)  # it may still end (or fail) in its thread: nobody waits
        if tripped in done and tripped.exception() is not None:
            raise StoreError(*_words(tripped.exception()))
        name = getattr(fn, "__name__", "a store call")
        error = StoreError(
            f"The store did not answer within {self.deadline_s:.0f} s ({name}).",
            "Check the network (or the emulators); paid images stay in the spool and the run can be resumed.",
        )
        self._trip(error)
        raise error

    def _trip(self, error: StoreError) -> None:
        """The store is stalled: fail every call waiting on it now, and every new one for a while."""
        with self._lock:
            self._down, self._down_until = error, time.monotonic() + self.deadline_s
            waiting, self._waiting = self._waiting, set()
        for loop, tripped in waiting:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there
                loop.call_soon_threadsafe(_fail, tripped, error)

    def close(self) -> None:
        # A call stuck past its deadline must not keep the process alive (daemon threads).
        self._pool.shutdown(wait=False, cancel_futures=True)


def _fail(tripped: asyncio.Future[Any], error: StoreError) -> None:
    if not tripped.done():
        tripped.set_exception(error)


def _consume(work: asyncio.Future[Any]) -> None:
    if not work.cancelled():
        work.exception()  # retrieved: never logged as "exception was never retrieved"


def _words(exc: BaseException | None) -> tuple[str, str | None]:
    if isinstance(exc, StoreError):
        return exc.message, exc.hint
    return f"The store is unavailable ({exc}).", None

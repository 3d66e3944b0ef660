"""One process pool per process, sized to the cores: resvg holds the GIL for a whole render, so
threads would take turns on one core. Workers are spawned (not forked: the parent runs an event
loop and threads), ignore Ctrl-C and SIGTERM (the parent decides when to stop and finishes
in-flight jobs first; a killed parent closes their queue and they exit) and build the DiceBear style
once when they start."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..models import RenderSpec

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_usable = True


def usable() -> bool:
    """False once workers failed to start twice in this process."""
    return _usable


def give_up() -> None:
    global _usable
    _usable = False


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _warm() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from . import style

    style()


def render_in_worker(spec: RenderSpec, palette: dict[str, str], size: int, cache_dir: str | None) -> bytes:
    from . import render_image

    return render_image(spec, palette, size, Path(cache_dir) if cache_dir else None)


def pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=cores(), mp_context=multiprocessing.get_context("spawn"), initializer=_warm
            )
        return _pool


def _drop(wait: bool) -> None:
    """Forget the pool (the next call starts a fresh one) and shut it down, cancelling what waits."""
    global _pool
    with _lock:
        old, _pool = _pool, None
    if old is not None:
        old.shutdown(wait=wait, cancel_futures=True)


def reset() -> None:
    """Drop a broken pool (a worker was killed) without waiting for it."""
    _drop(wait=False)


def shutdown() -> None:
    """At exit: stop the workers and wait for them."""
    _drop(wait=True)


atexit.register(shutdown)

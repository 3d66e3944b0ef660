"""The offline provider: deterministic DiceBear scenes, no key, no network, cost 0.

Renders run in a process pool sized to the cores, fed by the event loop; the static scene
layers are cached under ``<data_dir>/cache/render`` (never inside the installed package)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures.process import BrokenProcessPool

from ..errors import ProviderError
from ..models import ImageRequest, ImageResult
from ..render import library_versions, pool
from .base import Capabilities, ProviderContext


class LocalProvider:
    name = "local"
    capabilities = Capabilities(edits=True, max_references=16, sizes=("512x512", "768x768", "1024x1024"))

    def __init__(self, ctx: ProviderContext | None = None) -> None:
        self._palette = ctx.configs.style.palette.model_dump() if ctx else None
        self._cache_dir = str(ctx.settings.data_dir / "cache" / "render") if ctx else None

    @property
    def renderer_version(self) -> str:
        return library_versions()

    @property
    def default_concurrency(self) -> int:
        """One job in flight per core keeps every worker busy."""
        return pool.cores()

    async def generate(self, request: ImageRequest) -> ImageResult:
        if request.spec is None:
            raise ProviderError("The local renderer needs a render spec.", "This is a bug in the planner.")
        if self._palette is None:
            raise ProviderError("The local renderer has no palette.", "Create it with a ProviderContext.")
        try:
            size = int(request.size.lower().split("x")[0])
        except ValueError:
            raise ProviderError(f"Size {request.size!r} is not WxH.", "Use e.g. --size 1024x1024.") from None
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        args = (request.spec, self._palette, size, self._cache_dir)
        data: bytes | None = None
        for _ in range(2 if pool.usable() else 0):
            try:
                data = await loop.run_in_executor(pool.pool(), pool.render_in_worker, *args)
                break
            except (BrokenProcessPool, OSError):  # OSError: the pool could not start its helpers
                pool.reset()  # a worker died (killed, out of memory): once more on a fresh pool
        if data is None:
            # Workers cannot start here (e.g. an interpreter this user may not exec): render in a
            # thread, slower but correct.
            pool.give_up()
            data = await asyncio.to_thread(pool.render_in_worker, *args)
        return ImageResult(
            data=data,
            mime="image/bmp",
            provider=self.name,
            model=request.model,
            latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        return None  # the pool outlives one event loop; it is shut down at exit

"""The offline provider: deterministic DiceBear scenes, no key, no network, cost 0."""

from __future__ import annotations

import asyncio
import time

from ..errors import ProviderError
from ..models import ImageRequest, ImageResult
from ..render import library_versions, render_png
from .base import Capabilities, ProviderContext


class LocalProvider:
    name = "local"
    capabilities = Capabilities(edits=True, max_references=16, sizes=("512x512", "768x768", "1024x1024"))

    def __init__(self, ctx: ProviderContext | None = None) -> None:
        self._palette = ctx.configs.style.palette.model_dump() if ctx else None

    @property
    def renderer_version(self) -> str:
        return library_versions()

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
        data = await asyncio.to_thread(render_png, request.spec, self._palette, size)
        return ImageResult(
            data=data,
            mime="image/png",
            provider=self.name,
            model=request.model,
            latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        return None

"""The offline renderer: a DiceBear character (avataaars, hoodie, this project's eyes and
shading) composited over a cached, warm workspace scene whose props follow progress.
Deterministic: the same RenderSpec gives the same pixels on every machine with the pinned
library versions. ``render_image`` is what a worker process runs (see ``pool``)."""

from __future__ import annotations

import functools
import io
from importlib.metadata import version
from pathlib import Path

from ..models import RenderSpec
from .avatar import HAIR_HEX, SKIN_HEX, avatar_svg, style
from .compose import face_geometry, figure_svg, frame, layer_cache

RENDERER_VERSION = "scene-3"

__all__ = [
    "HAIR_HEX",
    "RENDERER_VERSION",
    "SKIN_HEX",
    "avatar_svg",
    "face_geometry",
    "figure_svg",
    "library_versions",
    "render_image",
    "render_png",
    "style",
]


@functools.cache
def library_versions() -> str:
    """The versions that decide how an avatar looks; part of every local request key (read once
    per process: installed packages do not change under it, and reading their metadata costs
    more than a cached answer of the server)."""
    return "dicebear-core={};dicebear-styles={};resvg-py={};{}".format(
        version("dicebear-core"), version("dicebear-styles"), version("resvg-py"), RENDERER_VERSION
    )


def render_image(spec: RenderSpec, palette: dict[str, str], size: int = 1024, cache_dir: Path | None = None) -> bytes:
    """The finished frame as an uncompressed BMP: it is decoded and encoded to WebP right after,
    so compressing it here would only cost time (PNG: ~50 ms a frame both ways)."""
    img = frame(spec, palette, size, layer_cache(cache_dir, library_versions()))
    buf = io.BytesIO()
    img.save(buf, format="BMP")
    return buf.getvalue()


def render_png(spec: RenderSpec, palette: dict[str, str], size: int = 1024, cache_dir: Path | None = None) -> bytes:
    img = frame(spec, palette, size, layer_cache(cache_dir, library_versions()))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()

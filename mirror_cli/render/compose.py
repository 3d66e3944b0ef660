"""Compositing: the cached static layers (background, desk) with the character on top.

Only the character is rasterised per job, and only over the part of the frame it covers above
the desk. The layers are cached in memory (a small LRU per process) and on disk under the
user's data dir, keyed by a hash of their SVG, the size and the library versions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

from PIL import Image

from ..models import RenderSpec
from . import avatar, scene

LAYER_MEMORY = 24  # layers kept per process (a 1024^2 layer is 3-4 MB)


class LayerCache:
    """Rendered layers by content hash: memory first, then disk, then resvg."""

    # Memory is per process and shared by every folder: keys are content hashes.
    _mem: ClassVar[OrderedDict[str, tuple[Image.Image, tuple[int, int], bytes]]] = OrderedDict()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, folder: Path | None, versions: str) -> None:
        self.folder = folder
        self.versions = versions
        self.renders = 0  # how many layers this cache rasterised (for tests and benches)
        self.loads = 0  # how many it read from disk
        self._on_disk: set[str] = set()

    @classmethod
    def forget(cls) -> None:
        """Empty this process's memory tier (tests)."""
        with cls._lock:
            cls._mem.clear()

    def get(self, svg: str, size: int, crop: bool) -> tuple[Image.Image, tuple[int, int]]:
        key = hashlib.sha256(f"{self.versions}|{size}|{crop}|{svg}".encode()).hexdigest()[:40]
        with self._lock:
            hit = self._mem.get(key)
            if hit is not None:
                self._mem.move_to_end(key)
        if hit is not None:
            if key not in self._on_disk:  # known from another folder: this one gets a copy too
                self._save(key, hit[2])
            return hit[0], hit[1]
        png = self._load(key)
        if png is None:
            png = self._render(svg, size)
            self._save(key, png)
        layer = Image.open(io.BytesIO(png))
        layer.load()
        if crop:
            box = layer.getbbox() or (0, 0, 1, 1)
            entry = (layer.crop(box), (box[0], box[1]), png)
        else:
            entry = (layer.convert("RGB"), (0, 0), png)
        with self._lock:
            self._mem[key] = entry
            while len(self._mem) > LAYER_MEMORY:
                self._mem.popitem(last=False)
        return entry[0], entry[1]

    def _load(self, key: str) -> bytes | None:
        if self.folder is None:
            return None
        try:
            png = (self.folder / f"{key}.png").read_bytes()
        except OSError:
            return None
        if not png.startswith(b"\x89PNG"):
            return None  # damaged: render it again
        self.loads += 1
        self._on_disk.add(key)
        return png

    def _render(self, svg: str, size: int) -> bytes:
        import resvg_py

        self.renders += 1
        return bytes(resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, skip_system_fonts=True))

    def _save(self, key: str, png: bytes) -> None:
        if self.folder is None:
            return
        tmp: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(png)
            os.replace(tmp, self.folder / f"{key}.png")
            self._on_disk.add(key)
        except OSError:  # a read-only or full disk only costs speed; leave nothing half-written
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


_SVG_OPEN = re.compile(r"^<svg[^>]*>")
_TRANSFORM = re.compile(
    r'id="figure" transform="translate\(([-\d.]+) ([-\d.]+)\) rotate\(([-\d.]+)\) scale\(([-\d.]+)\)'
)


def figure_box(pose: scene.Pose) -> tuple[float, float, float, float]:
    """The frame area (1024 units) the figure can cover above the desk: x0, y0, x1, y1."""
    s, t = pose.scale, math.radians(pose.tilt)
    xs, ys = [], []
    for ax, ay in ((0, 0), (280, 0), (0, 280), (280, 280)):
        dx, dy = (ax - avatar.NECK[0]) * s, (ay - avatar.NECK[1]) * s
        xs.append(pose.x + dx * math.cos(t) - dy * math.sin(t))
        ys.append(pose.y + dx * math.sin(t) + dy * math.cos(t))
    return max(0.0, min(xs)), max(0.0, min(ys)), min(1024.0, max(xs)), min(float(scene.DESK_TOP), max(ys))


def figure_svg(spec: RenderSpec, size: int) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """The character placed and posed for its stage, as an SVG of just the box it covers:
    (svg, pixel size, pixel offset in the frame)."""
    look = scene.stage_look(spec.stage)
    pose = look.pose
    k = size / 1024
    x0, y0, x1, y1 = figure_box(pose)
    px0, py0 = math.floor(x0 * k), math.floor(y0 * k)
    pw, ph = math.ceil(x1 * k) - px0, math.ceil(y1 * k) - py0
    # The avatar's own <svg> becomes a group: a nested <svg> clips to its viewport, and resvg
    # pays for a clip mask over the whole figure.
    body = _SVG_OPEN.sub('<g fill="none">', avatar.avatar_svg(spec), count=1).removesuffix("</svg>") + "</g>"
    outfit = "".join(avatar.OUTFIT[o] for o in look.outfit)
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{pw}" height="{ph}" '
        f'viewBox="{px0 / k:.3f} {py0 / k:.3f} {pw / k:.3f} {ph / k:.3f}"><defs>{avatar.OUTFIT_DEFS}</defs>'
        f'<g id="figure" {_figure_transform(pose)}>{body}{outfit}</g></svg>'
    )
    return svg, (pw, ph), (px0, py0)


def _figure_transform(pose: scene.Pose) -> str:
    return (
        f'transform="translate({pose.x} {pose.y}) rotate({pose.tilt}) scale({pose.scale}) '
        f'translate({-avatar.NECK[0]} {-avatar.NECK[1]})"'
    )


def light_svg(pose: scene.Pose, size: int) -> str:
    """Shading and rim light over the figure's head and hoodie, the same for every person in
    a pose: rendered once per (pose, size) and laid over each figure."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 1024 1024">'
        f"<defs>{avatar.LIGHT_DEFS}</defs><g {_figure_transform(pose)}>{avatar.LIGHT}</g></svg>"
    )


def face_geometry(svg: str) -> dict[str, float | str]:
    """What the frame shows of the face, read back from a figure SVG: the head's box (skin,
    hair excluded) as a share of the frame's height and area, and the eye shape's id."""
    m = _TRANSFORM.search(svg)
    if m is None:
        raise ValueError("not a figure SVG")
    s = float(m.group(4))
    x0, y0, x1, y1 = avatar.HEAD_BOX
    eyes = re.search(r'id="eyes-([A-Za-z0-9]+)-', svg)
    return {
        "head_height_share": (y1 - y0) * s / 1024,
        "head_area_share": (x1 - x0) * (y1 - y0) * s * s / 1024**2,
        "head_and_shoulders_share": (scene.DESK_TOP - (float(m.group(2)) - (avatar.NECK[1] - y0) * s)) / 1024,
        "eyes": eyes.group(1) if eyes else "",
    }


_caches: dict[str | None, LayerCache] = {}
_caches_lock = threading.Lock()


def layer_cache(folder: Path | None, versions: str) -> LayerCache:
    key = str(folder) if folder else None
    with _caches_lock:
        if key not in _caches:
            _caches[key] = LayerCache(folder, versions)
        return _caches[key]


def frame(spec: RenderSpec, palette: dict[str, str], size: int, cache: LayerCache) -> Image.Image:
    import resvg_py

    look = scene.stage_look(spec.stage)
    props = frozenset(spec.props)
    bg, _ = cache.get(scene.background_svg(look, props, palette, size), size, crop=False)
    fg, fg_at = cache.get(scene.foreground_svg(look, props, palette, size), size, crop=True)
    svg, (pw, ph), at = figure_svg(spec, size)
    fig = Image.open(
        io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, width=pw, height=ph, skip_system_fonts=True)))
    )
    fig.load()
    light, light_at = cache.get(light_svg(look.pose, size), size, crop=True)
    out = bg.copy()
    out.paste(fig, at, fig)
    out.paste(light, light_at, light)
    out.paste(fg, fg_at, fg)
    return out

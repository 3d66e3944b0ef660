"""The quality gate run on every image before it is stored. Thresholds live in the style config
(``gate``); the metrics are Pillow-only and work on a 256 px copy.

- size: the size that was requested (hard)
- warm palette: share of saturated pixels in the orange/amber hue band, and a colour temperature
  proxy (mean red minus mean blue)
- cartoon look: rendered images have large flat-shaded regions, little texture noise and few
  strong edges; photos and noise have the opposite
- not blank: grey-level standard deviation above a floor (hard)

Hard failures (undecodable, blank, wrong size) mean the image is unusable: the pipeline may buy a
second one. Heuristic failures (palette, texture) of a paid image are stored flagged and reported;
they are re-bought only when the style opts in (``gate.retry_on_heuristic``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageFilter, ImageStat

from .config import GateConfig

HUE_LOW, HUE_HIGH = 8, 38  # ~11-54 degrees on Pillow's 0-255 hue scale: orange through amber
MIN_SAT, MIN_VAL = 80, 70


def _share(mask: Image.Image) -> float:
    return ImageStat.Stat(mask).mean[0] / 255.0


@dataclass
class Verdict:
    ok: bool
    failures: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    hard: bool = False  # an unusable image (undecodable, blank, wrong size), not a matter of taste

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(img: Image.Image) -> dict[str, float]:
    small = img.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    h, s, v = small.convert("HSV").split()
    in_band = h.point(lambda x: 255 if HUE_LOW <= x <= HUE_HIGH else 0)
    saturated = s.point(lambda x: 255 if x >= MIN_SAT else 0)
    bright = v.point(lambda x: 255 if x >= MIN_VAL else 0)
    warm = ImageChops.multiply(ImageChops.multiply(in_band, saturated), bright)
    r_mean, _, b_mean = ImageStat.Stat(small).mean
    gray = small.convert("L")
    noise = ImageStat.Stat(ImageChops.difference(gray, gray.filter(ImageFilter.MedianFilter(3)))).mean[0]
    edges = gray.filter(ImageFilter.FIND_EDGES)
    flat = _share(edges.point(lambda x: 255 if x < 10 else 0))
    strong = _share(edges.point(lambda x: 255 if x > 48 else 0))
    return {
        "warm_share": round(_share(warm), 4),
        "warmth": round((r_mean - b_mean) / 255.0, 4),
        "noise": round(noise, 3),
        "flat_share": round(flat, 4),
        "edge_density": round(strong, 4),
        "stddev": round(ImageStat.Stat(gray).stddev[0], 3),
    }


def undecodable(reason: str) -> Verdict:
    return Verdict(ok=False, failures=[f"undecodable image ({reason})"], hard=True)


def parse_size(size: str | None) -> tuple[int, int] | None:
    """'1536x1024' -> (1536, 1024); 'auto' or None -> None."""
    if not size or "x" not in size.lower():
        return None
    w, _, h = size.lower().partition("x")
    try:
        return int(w), int(h)
    except ValueError:
        return None


def check_image(img: Image.Image, gate: GateConfig, expected: tuple[int, int] | None = None) -> Verdict:
    """``expected`` is the requested size (None: the gate's configured square size, if any)."""
    if not gate.enabled:
        return Verdict(ok=True)
    m = measure(img)
    hard: list[str] = []
    if expected is None and gate.size:
        expected = (gate.size, gate.size)
    if expected is not None and img.size != expected:
        hard.append(f"size {img.width}x{img.height} is not {expected[0]}x{expected[1]}")
    if m["stddev"] < gate.min_stddev:
        hard.append(f"near-uniform image (stddev {m['stddev']:.1f} < {gate.min_stddev})")
    failures: list[str] = []
    if m["warm_share"] < gate.min_warm_share:
        failures.append(f"palette not warm enough (amber share {m['warm_share']:.2f} < {gate.min_warm_share})")
    if m["warmth"] < gate.min_warmth:
        failures.append(f"colour temperature too cold ({m['warmth']:.2f} < {gate.min_warmth})")
    if m["noise"] > gate.max_noise:
        failures.append(f"photographic texture noise {m['noise']:.1f} > {gate.max_noise}")
    if m["flat_share"] < gate.min_flat_share:
        failures.append(f"too few flat-shaded regions ({m['flat_share']:.2f} < {gate.min_flat_share})")
    if m["edge_density"] > gate.max_edge_density:
        failures.append(f"edge density {m['edge_density']:.2f} > {gate.max_edge_density}")
    return Verdict(ok=not (hard or failures), failures=[*hard, *failures], metrics=m, hard=bool(hard))

"""Images built to fail the quality gate, one failure mode each (used by tests and bench)."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter


def cold_blue() -> Image.Image:
    img = Image.new("RGB", (1024, 1024), (40, 90, 200))
    ImageDraw.Draw(img).ellipse((300, 200, 700, 700), fill=(120, 170, 230))
    return img


def warm_noise() -> Image.Image:
    noise = Image.effect_noise((1024, 1024), 60)
    return Image.merge(
        "RGB",
        [
            noise.point(lambda v: min(255, v + 90)),
            noise.point(lambda v: max(0, v - 10)),
            noise.point(lambda v: max(0, v - 80)),
        ],
    )


def photo_like() -> Image.Image:
    """Warm, but textured everywhere the way a photograph is: fine random detail, soft gradients."""
    rng = random.Random(3)
    small = Image.new("RGB", (256, 256))
    px = small.load()
    for y in range(256):
        for x in range(256):
            base = 150 + int(60 * (x / 255))
            px[x, y] = (
                min(255, base + rng.randint(-40, 40)),
                90 + rng.randint(-35, 35),
                50 + rng.randint(-25, 25),
            )
    return small.resize((1024, 1024), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(0.4))


def blank_amber() -> Image.Image:
    return Image.new("RGB", (1024, 1024), (240, 150, 70))


def bad_images() -> dict[str, Image.Image]:
    return {
        "cold blue": cold_blue(),
        "warm noise": warm_noise(),
        "photo-like texture": photo_like(),
        "blank amber": blank_amber(),
        "wrong size": blank_amber().resize((512, 512)),
    }

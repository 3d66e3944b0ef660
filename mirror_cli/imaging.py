"""Pillow work: photo intake (metadata stripped), encoding, thumbnails, contact sheets."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .config import PhotoLimits
from .errors import PhotoError, ProviderError, read_bounded

# Photos are checked against the configured pixel limit before decoding (intake_photo_bytes);
# Pillow's own warning for large headers would only print noise before that clear refusal.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

PHOTO_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
THUMB_SIZE = 256


@dataclass(frozen=True)
class Photo:
    data: bytes  # PNG, no metadata
    mime: str
    width: int
    height: int


def intake_photo(path: Path, limits: PhotoLimits) -> Photo:
    """Read a user photo: PNG/JPEG/WebP only, EXIF orientation applied, every metadata field
    (GPS, camera, ICC, XMP) dropped, longest side bounded, decompression bombs refused."""
    raw = read_bounded(
        path,
        limits.max_bytes,
        what="photo",
        hint="Pass a PNG, JPEG or WebP file under the size limit (for example 2000 px on the long side).",
        error=PhotoError,
    )
    return intake_photo_bytes(raw, limits, name=str(path))


def intake_photo_bytes(raw: bytes, limits: PhotoLimits, name: str = "photo") -> Photo:
    if len(raw) > limits.max_bytes:
        raise PhotoError(f"{name} is too large ({len(raw) / 1e6:.1f} MB).", "Send a smaller photo.")
    # The pixel limit is checked on the header, before decoding, without touching Pillow's global
    # MAX_IMAGE_PIXELS or the warning filters: a server decodes in several threads at once.
    try:
        img = Image.open(io.BytesIO(raw))
        fmt = img.format or ""
        if fmt not in PHOTO_FORMATS:
            raise PhotoError(
                f"{name} is a {fmt or 'unknown'} file; photos must be PNG, JPEG or WebP.",
                "Convert the photo to JPEG or PNG and try again.",
            )
        if img.width * img.height > limits.max_pixels:
            raise PhotoError(
                f"{name} has too many pixels (limit {limits.max_pixels:,}).", "Resize the photo before using it."
            )
        img.load()
    except Image.DecompressionBombError as exc:  # beyond Pillow's own hard limit, refused on open
        raise PhotoError(
            f"{name} has too many pixels (limit {limits.max_pixels:,}).", "Resize the photo before using it."
        ) from exc
    except UnidentifiedImageError as exc:
        raise PhotoError(f"{name} is not an image Pillow can read.", "Pass a PNG, JPEG or WebP photo.") from exc
    except OSError as exc:
        raise PhotoError(f"{name} is damaged or truncated ({exc}).", "Export the photo again.") from exc
    upright: Image.Image = ImageOps.exif_transpose(img) or img
    pixels = upright.convert("RGBA" if upright.mode in ("RGBA", "LA", "P") else "RGB")
    pixels.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
    # A fresh image holds pixels only: no EXIF, GPS, ICC profile or XMP survives.
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False)
    return Photo(data=buf.getvalue(), mime="image/png", width=clean.width, height=clean.height)


def decode(data: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ProviderError(
            "The provider returned data that is not a readable image.",
            "Retry; if it persists, check the provider or gateway.",
        ) from exc
    return img


def encode_webp(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    # method 2: about half the CPU of the default 4 for a file within ~6% of its size
    img.convert("RGB").save(buf, format="WEBP", quality=quality, method=2)
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def thumbnail(img: Image.Image, size: int = THUMB_SIZE) -> bytes:
    t = img.convert("RGB").copy()
    t.thumbnail((size, size), Image.Resampling.LANCZOS)
    return encode_webp(t, quality=82)


def post_process(data: bytes, size: tuple[int, int] | int | None) -> tuple[Image.Image, bytes, bytes]:
    """Decode, bring to the requested size when only the scale differs (the aspect ratio is never
    changed: an image of another shape is kept as it is, and the quality gate reports it), and
    encode image + thumbnail as WebP."""
    img = decode(data).convert("RGB")
    if isinstance(size, int):
        size = (size, size)
    if size and img.size != size:
        w, h = size
        if abs(img.width * h - img.height * w) <= max(w, h):  # same shape within a pixel
            img = img.resize(size, Image.Resampling.LANCZOS)
    return img, encode_webp(img), thumbnail(img)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def contact_sheet(
    tiles: Sequence[tuple[Image.Image | None, str, str]],
    title: str,
    columns: int = 3,
    tile: int = 320,
) -> Image.Image:
    """A grid of (image, label, sublabel) tiles on a warm card background."""
    pad, head, caption = 24, 72, 58
    rows = max(1, -(-len(tiles) // columns))
    width = pad + columns * (tile + pad)
    height = head + rows * (tile + caption + pad) + pad
    sheet = Image.new("RGB", (width, height), (253, 244, 230))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 22), title, fill=(94, 47, 20), font=_font(30))
    for i, (img, label, sub) in enumerate(tiles):
        x = pad + (i % columns) * (tile + pad)
        y = head + (i // columns) * (tile + caption + pad)
        draw.rounded_rectangle(
            (x - 4, y - 4, x + tile + 4, y + tile + caption),
            radius=14,
            fill=(255, 255, 255),
            outline=(232, 134, 58),
            width=2,
        )
        if img is not None:
            sheet.paste(img.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (x, y))
        else:
            draw.rectangle((x, y, x + tile, y + tile), fill=(240, 226, 205))
            draw.text((x + tile // 2, y + tile // 2), "no image", fill=(150, 110, 80), font=_font(22), anchor="mm")
        draw.text((x + 8, y + tile + 8), label, fill=(94, 47, 20), font=_font(22))
        draw.text((x + 8, y + tile + 34), sub, fill=(140, 100, 70), font=_font(16))
    return sheet

"""What the loopback OpenAI server answers with: its pictures (good, off-style and unusable), the
usage it bills per image, a sync answer's body and a batch's output and error files."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import io
import json
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from openai_server import FakeOpenAI

# Output image tokens the fake bills per image (independent of mirror's configs/models.yaml).
OUTPUT_TOKENS = {"low": 196, "medium": 1756, "high": 7024, "auto": 1756}
REFERENCE_IMAGE_TOKENS = 4160


def picture(seed: int, size: int = 1024) -> bytes:
    """A flat-shaded, warm 'cartoon' picture, different per seed."""
    img = Image.new("RGB", (size, size), (246, 160, 77))
    d = ImageDraw.Draw(img)
    d.rectangle((0, size * 0.55, size, size), fill=(251, 211, 141))
    d.rectangle((0, size * 0.85, size, size), fill=(156, 91, 46))
    cx = size // 2 + (seed % 7 - 3) * 12
    d.ellipse((cx - 200, 250, cx + 200, 650), fill=(208, 139, 91))
    d.ellipse((cx - 110, 380, cx - 50, 440), fill=(60, 40, 30))
    d.ellipse((cx + 50, 380, cx + 110, 440), fill=(60, 40, 30))
    d.pieslice((cx - 90, 470, cx + 90, 590), 0, 180, fill=(120, 50, 40))
    d.rectangle((cx - 300, 700, cx + 300, size), fill=(200, 85, 61))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


MARK = (255, 0, 255)  # the corner a picture the moderation endpoint flags carries: magenta...
MARK_INNER = (0, 255, 0)  # ...with a green square inside


def marked(png: bytes) -> bytes:
    """The same picture with the marker in its top-left corner: the loopback moderation endpoint
    flags exactly these (for image-moderation tests)."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 47, 47), fill=MARK)
    d.rectangle((16, 16, 31, 31), fill=MARK_INNER)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def is_marked(data: bytes) -> bool:
    """Whether an image (any format Pillow reads) carries the marker; lossy encodings pass too."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if img.width < 48 or img.height < 48:
        return False

    def near(xy: tuple[int, int], rgb: tuple[int, int, int]) -> bool:
        got = img.getpixel(xy)
        assert isinstance(got, tuple)
        return all(abs(int(a) - b) <= 40 for a, b in zip(got, rgb, strict=True))

    return near((4, 4), MARK) and near((40, 40), MARK) and near((23, 23), MARK_INNER)


def _cold_picture() -> bytes:
    img = Image.new("RGB", (1024, 1024), (40, 90, 200))
    ImageDraw.Draw(img).ellipse((300, 200, 700, 700), fill=(120, 170, 230))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _bad_picture(kind: str) -> bytes:
    """Answers the quality gate must treat as unusable: 'blank', 'garbage' (not an image), 'small'."""
    if kind == "garbage":
        return b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    img = Image.new("RGB", (512, 512) if kind == "small" else (1024, 1024), (240, 150, 70))
    if kind == "small":
        img = Image.open(io.BytesIO(picture(1))).resize((512, 300))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _resized(png: bytes, size: str) -> bytes:
    try:
        w, h = (int(x) for x in size.lower().split("x"))
    except ValueError:
        return png
    if (w, h) == (1024, 1024):
        return png
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).resize((w, h)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_answer(
    fake: FakeOpenAI,
    path: str,
    params: dict[str, Any],
    ref_shas: list[str],
    batch: bool,
    t_start: float | None = None,
    client: str | None = None,
) -> dict[str, Any]:
    """Bill one image into the ledger; return its request id and the ImagesResponse body. A sync
    answer gets its t_end once it has been written to the socket."""
    quality = params.get("quality", "auto")
    prompt = params.get("prompt", "")
    text_tokens = max(1, math.ceil(len(prompt) / 4)) + 6 * len(ref_shas)
    image_tokens = REFERENCE_IMAGE_TOKENS * len(ref_shas)
    out_tokens = OUTPUT_TOKENS.get(quality, 1756)
    usage = {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": out_tokens,
        "total_tokens": text_tokens + image_tokens + out_tokens,
    }
    seed = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(fake._pictures)
    png = _resized(fake._pictures[seed], str(params.get("size", "1024x1024")))
    request_id = "req_" + uuid.uuid4().hex[:20]
    with fake._lock:
        if fake.off_style > 0:
            fake.off_style -= 1
            png = _cold_picture()
        elif fake.bad_next:
            png = _bad_picture(fake.bad_next.popleft())
        elif fake.bad_random and fake.bad_random[0].random() < fake.bad_random[1]:
            png = _bad_picture(fake.bad_random[2])
        if fake.unsafe_next > 0:  # a picture the moderation endpoint flags
            fake.unsafe_next -= 1
            png = marked(png)
        now = time.monotonic()
        fake.ledger.append(
            {
                "request_id": request_id,
                "t_start": t_start or now,
                **({"t_end": now} if batch else {}),
                "path": path,
                "model": params.get("model"),
                "quality": quality,
                "prompt": prompt,
                "usage": usage,
                "safety_identifier": params.get("safety_identifier"),
                "sha256": hashlib.sha256(png).hexdigest(),
                "references": ref_shas,
                "batch": batch,
                "client": client,  # which process sent it (FakeOpenAI.client_url)
            }
        )
    return {
        "request_id": request_id,
        "body": {
            "created": int(time.time()),
            "background": "opaque",
            "output_format": "png",
            "quality": quality,
            "size": params.get("size", "1024x1024"),
            "data": [{"b64_json": base64.b64encode(png).decode()}],
            "usage": usage,
        },
    }


def run_batch(fake: FakeOpenAI, batch: dict[str, Any]) -> None:
    """Answer every line of a batch's input file: an output file and, for failures, an error file."""
    lines = [json.loads(x) for x in fake.files[batch["input_file_id"]]["data"].decode().splitlines() if x.strip()]
    out, err = [], []
    end, answered = fake.batch_end or ("completed", len(lines))
    for n, line in enumerate(lines):
        cid, body = line["custom_id"], line["body"]
        if n >= answered:
            message = f"This request was not executed: the batch was {end} first."
            err.append(
                {
                    "id": f"batch_req_{n}",
                    "custom_id": cid,
                    "response": None,
                    "error": {"code": f"batch_{end}", "message": message},
                }
            )
            continue
        if cid in fake.batch_fail:
            err.append(
                {
                    "id": "batch_req_" + uuid.uuid4().hex[:12],
                    "custom_id": cid,
                    "response": None,
                    "error": {"code": "image_generation_failed", "message": "The image could not be generated."},
                }
            )
            continue
        refs = []
        for image in body.get("images", []):
            f = fake.files.get(image.get("file_id", ""))
            if f is None or f["purpose"] != "vision":
                refs = None
                break
            refs.append(hashlib.sha256(f["data"]).hexdigest())
        if refs is None:
            err.append(
                {
                    "id": "batch_req_x",
                    "custom_id": cid,
                    "response": {
                        "status_code": 400,
                        "body": {"error": {"code": "invalid_file", "message": "unknown file_id"}},
                    },
                    "error": None,
                }
            )
            continue
        answer = image_answer(fake, line["url"], body, refs, batch=True)
        out.append(
            {
                "id": "batch_req_" + uuid.uuid4().hex[:12],
                "custom_id": cid,
                "response": {"status_code": 200, "request_id": answer["request_id"], "body": answer["body"]},
                "error": None,
            }
        )
    fake.rng_shuffle(out)
    for kind, rows in (("output_file_id", out), ("error_file_id", err)):
        if rows:
            fid = "file-" + uuid.uuid4().hex[:16]
            fake.files[fid] = {
                "purpose": "batch_output",
                "data": "".join(json.dumps(r) + "\n" for r in rows).encode(),
                "filename": f"{kind}.jsonl",
            }
            batch[kind] = fid
    batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}


def parse_multipart(ctype: str, body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body
    )
    params: dict[str, Any] = {}
    refs: list[dict[str, Any]] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            refs.append(
                {
                    "field": name,
                    "filename": filename,
                    "content_type": part.get_content_type(),
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "bytes": payload,
                }
            )
        else:
            params[str(name)] = payload.decode()
    return params, refs

"""Review output for designers: contact-sheet PNGs of users' timelines (paged, so no sheet
grows past a bounded height) and an HTML page of thumbnails, each linking to its full image,
with messages, costs and the same-face score. Images are written next to the page (relative
links), so the page stays small however many users it shows."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .imaging import contact_sheet, decode
from .models import AvatarRecord, Persona
from .stores.base import Store
from .units import money


@dataclass
class UserTimeline:
    persona: Persona
    records: list[AvatarRecord]
    labels: dict[str, str]
    order: Sequence[str]
    from_day: dict[str, int] = field(default_factory=dict)  # each stage's first active day
    hidden: dict[str, str] = field(default_factory=dict)  # target -> the report hiding its avatar

    def missing(self, target: str) -> str:
        """Why a tile is empty: its avatar hidden by a report, a stage passed over (evolve makes
        only the stage reached), a stage reached but not made yet, one still ahead, or a trilogy
        kind not made."""
        if target in self.hidden:
            return f"hidden by report {self.hidden[target]}"
        day = self.from_day.get(target)
        if day is None:
            return "not made yet (mirror trilogy)"
        made = {r.target for r in self.records}
        later = [t for t in self.order[self.order.index(target) + 1 :] if t in self.from_day and t in made]
        if later:
            return f"skipped: went straight to {self.labels.get(later[0], later[0])}"
        if self.persona.progress.active_days >= day:
            return f"reached on day {day}, not made yet"
        return f"not reached yet (from day {day})"


def _face(rec: AvatarRecord) -> str:
    """The same-face score, when it was measured: ' · face 0.31' (or '... drift')."""
    d = rec.identity.get("distance") if rec.identity else None
    if d is None:
        return ""
    return f" · face {d:.2f}" + (" drift" if rec.identity.get("drift") else "")


def sheet_for(tl: UserTimeline, store: Store, include_missing: bool = True) -> Image.Image:
    by_target = {r.target: r for r in tl.records}
    tiles: list[tuple[Image.Image | None, str, str]] = []
    for target in tl.order:
        rec = by_target.get(target)
        if rec is None and not include_missing:
            continue
        img = decode(store.read_image(rec.image_path)) if rec else None
        sub = tl.missing(target)
        if rec:
            sub = f"{rec.created_at:%Y-%m-%d} · {rec.provider} · {money(rec.cost_usd)}{_face(rec)}"
        tiles.append((img, tl.labels.get(target, target), sub))
    return contact_sheet(tiles, f"{tl.persona.name} ({tl.persona.id}) · Mirror Realm timeline")


CSS = """
body{margin:0;font-family:system-ui,-apple-system,Segoe UI,sans-serif;background:#FDF4E6;color:#5E2F14}
header{padding:28px 40px;background:linear-gradient(90deg,#F6A04D,#FBD38D)}
h1{margin:0;font-size:28px} h2{margin:32px 40px 8px;font-size:22px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:22px;padding:12px 40px 32px}
.card{background:#fff;border-radius:16px;box-shadow:0 4px 14px rgba(140,70,20,.15);overflow:hidden}
.card img{width:100%;display:block;aspect-ratio:1/1;object-fit:cover}
.meta{padding:12px 14px}.label{font-weight:700;font-size:17px}.sub{color:#8C6446;font-size:13px;margin-top:2px}
.msg{margin-top:10px;font-size:14px;line-height:1.4;background:#FFF6E8;border-left:4px solid #E8863A;padding:8px 10px;
border-radius:6px}.flag{color:#B5523B;font-weight:600}.empty{background:#F0E2CD;box-shadow:none}
"""


def html_page(timelines: Sequence[UserTimeline], images: dict[tuple[str, str], tuple[str, str]], title: str) -> str:
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1></header>"
    ]
    for tl in timelines:
        total = sum(r.cost_usd for r in tl.records)
        parts.append(
            f"<h2>{html.escape(tl.persona.name)} <small>({html.escape(tl.persona.id)}, "
            f"{tl.persona.progress.active_days} active days, {money(total)})</small></h2><div class='grid'>"
        )
        by_target = {r.target: r for r in tl.records}
        for target in tl.order:
            rec = by_target.get(target)
            if rec is None:  # the same words as the contact sheet's empty tile
                parts.append(
                    f"<div class='card empty'><div class='meta'><div class='label'>"
                    f"{html.escape(tl.labels.get(target, target))}</div>"
                    f"<div class='sub'>{html.escape(tl.missing(target))}</div></div></div>"
                )
                continue
            full, thumb = images[(tl.persona.id, target)]
            flag = f"<div class='flag'>{html.escape(rec.reason or '')}</div>" if rec.status != "ok" else ""
            label = html.escape(tl.labels.get(target, target))
            parts.append(
                f"<div class='card'><a href='{full}'><img alt='{label}' src='{thumb}' width='256' "
                f"height='256'></a><div class='meta'><div class='label'>{label}</div>"
                f"<div class='sub'>{rec.created_at:%Y-%m-%d %H:%M} · {html.escape(rec.provider)}/"
                f"{html.escape(rec.model)} · {money(rec.cost_usd)}{html.escape(_face(rec))}</div>{flag}"
                f"<div class='msg'>{html.escape(rec.message)}</div></div></div>"
            )
        parts.append("</div>")
    # Lets a headless browser (and a person with devtools) confirm every image decoded.
    parts.append(
        "<script>addEventListener('load',()=>{const ok=[...document.images].filter(i=>i.complete&&"
        "i.naturalWidth>0).length;document.body.dataset.imagesLoaded=ok;"
        "document.body.dataset.imagesTotal=document.images.length;});</script></body></html>"
    )
    return "".join(parts)


MAX_SHEET_HEIGHT = 8000  # px: a page of the contact sheet holds as many users as fit


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _write_images(
    timelines: Sequence[UserTimeline], store: Store, folder: Path
) -> dict[tuple[str, str], tuple[str, str]]:
    """Full image and thumbnail of every record, as files beside the page: {(user, target): (full, thumb)}."""
    from .imaging import thumbnail

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for tl in timelines:
        for rec in tl.records:
            stem = _safe(f"{tl.persona.id}-{rec.target}")
            data = store.read_image(rec.image_path)
            (folder / f"{stem}.webp").write_bytes(data)
            thumb = store.read_image(rec.thumb_path) if rec.thumb_path else thumbnail(decode(data))
            (folder / f"{stem}-thumb.webp").write_bytes(thumb)
            out[(tl.persona.id, rec.target)] = (f"{folder.name}/{stem}.webp", f"{folder.name}/{stem}-thumb.webp")
    return out


def _pages(sheets: list[Image.Image]) -> list[list[Image.Image]]:
    pages: list[list[Image.Image]] = [[]]
    height = 0
    for s in sheets:
        if pages[-1] and height + s.height > MAX_SHEET_HEIGHT:
            pages.append([])
            height = 0
        pages[-1].append(s)
        height += s.height
    return pages


def write_gallery(
    timelines: Sequence[UserTimeline], store: Store, out_dir: Path, name: str, title: str
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sheets = [sheet_for(tl, store) for tl in timelines] or [Image.new("RGB", (400, 100), (253, 244, 230))]
    pages = _pages(sheets)
    files: list[str] = []
    for i, group in enumerate(pages, start=1):
        sheet = Image.new("RGB", (max(s.width for s in group), sum(s.height for s in group)), (253, 244, 230))
        y = 0
        for s in group:
            sheet.paste(s, (0, y))
            y += s.height
        png = out_dir / (f"{name}.png" if len(pages) == 1 else f"{name}-{i}.png")
        sheet.save(png)
        files.append(str(png))
    images = _write_images(timelines, store, out_dir / f"{name}-images")
    page = out_dir / f"{name}.html"
    page.write_text(html_page(timelines, images, title), encoding="utf-8")
    return {"contact_sheet": files[0], "contact_sheets": files, "html": str(page)}

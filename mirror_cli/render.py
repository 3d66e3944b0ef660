"""The offline scene renderer: a DiceBear avatar (avataaars, hoodie) in a warm, cosy workspace
whose props follow progress. One SVG, rasterised once by resvg. Deterministic: the same
RenderSpec gives the same bytes on every machine with the pinned library versions."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from importlib import resources
from importlib.metadata import version
from typing import Any

from .models import RenderSpec

RENDERER_VERSION = "scene-2"

SKIN_HEX = {
    "pale": "ffdbb4",
    "light": "edb98a",
    "medium": "d08b5b",
    "tan": "ae5d29",
    "brown": "8d5524",
    "dark": "614335",
}
HAIR_HEX = {
    "black": "2c1b18",
    "darkBrown": "4a312c",
    "brown": "724133",
    "auburn": "a55728",
    "blonde": "d6b370",
    "platinum": "ecdcbf",
    "red": "c93305",
    "grey": "c9c3c0",
}


def library_versions() -> str:
    """The versions that decide how an avatar looks; part of every local request key."""
    return "dicebear-core={};dicebear-styles={};resvg-py={};{}".format(
        version("dicebear-core"), version("dicebear-styles"), version("resvg-py"), RENDERER_VERSION
    )


@lru_cache(maxsize=1)
def _style() -> Any:
    from dicebear import Style

    definition = json.loads((resources.files("dicebear_styles") / "avataaars.json").read_text(encoding="utf-8"))
    return Style(definition)


def _mix(hex_a: str, hex_b: str, t: float) -> str:
    a = [int(hex_a[i : i + 2], 16) for i in (0, 2, 4)]
    b = [int(hex_b[i : i + 2], 16) for i in (0, 2, 4)]
    return "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def avatar_svg(spec: RenderSpec) -> str:
    from dicebear import Avatar

    a = spec.appearance
    hair = HAIR_HEX[a.hair_color]
    if spec.older:
        hair = _mix(hair, "d9d4d0", 0.6)
    hoodie = a.hoodie_color.lstrip("#").lower()
    options: dict[str, Any] = {
        "seed": spec.seed,
        "clothingVariant": "hoodie",
        "clothesVariant": "hoodie",
        "clothesColor": [hoodie],
        "skinColor": [SKIN_HEX[a.skin]],
        "topVariant": a.hair_style,
        "topProbability": 100,
        "hairColor": [hair],
        "hatColor": [_mix(hoodie, "5a2e1a", 0.45)],
        "eyesVariant": spec.expression["eyes"],
        "eyebrowsVariant": spec.expression["eyebrows"],
        "mouthVariant": spec.expression["mouth"],
        "accessoriesProbability": 0 if a.glasses == "none" else 100,
        "facialHairProbability": 0 if a.facial_hair == "none" else 100,
        "facialHairColor": [hair],
    }
    options.pop("clothingVariant")
    if a.glasses != "none":
        options["accessoriesVariant"] = a.glasses
        options["accessoriesColor"] = ["3c2a20"]
    if a.facial_hair != "none":
        options["facialHairVariant"] = a.facial_hair
    return str(Avatar(_style(), options))


# ---------------------------------------------------------------- scene pieces (SVG snippets)


def _defs(p: dict[str, str]) -> str:
    return f"""<defs>
<linearGradient id="wall" x1="0" y1="0" x2="0" y2="1">
 <stop offset="0" stop-color="{p["background_top"]}"/><stop offset="1" stop-color="{p["background_bottom"]}"/>
</linearGradient>
<radialGradient id="halo" cx="512" cy="420" r="420" gradientUnits="userSpaceOnUse">
 <stop offset="0" stop-color="{p["glow"]}" stop-opacity="0.95"/><stop offset="1" stop-color="{p["glow"]}" stop-opacity="0"/>
</radialGradient>
<radialGradient id="lampglow" cx="930" cy="610" r="360" gradientUnits="userSpaceOnUse">
 <stop offset="0" stop-color="#FFF1C4" stop-opacity="0.9"/><stop offset="1" stop-color="#FFB347" stop-opacity="0"/>
</radialGradient>
<linearGradient id="sunset" x1="0" y1="0" x2="0" y2="1">
 <stop offset="0" stop-color="#F47B3A"/><stop offset="0.6" stop-color="#F9B45B"/><stop offset="1" stop-color="#FCE1A2"/>
</linearGradient>
<linearGradient id="desk" x1="0" y1="0" x2="0" y2="1">
 <stop offset="0" stop-color="{p["desk"]}"/><stop offset="1" stop-color="#6E3B1C"/>
</linearGradient>
<linearGradient id="holo" x1="0" y1="0" x2="1" y2="1">
 <stop offset="0" stop-color="#FFE8B0" stop-opacity="0.85"/><stop offset="1" stop-color="#FF9E5E" stop-opacity="0.35"/>
</linearGradient>
</defs>"""


def _window(skyline: bool) -> str:
    city = ""
    if skyline:
        city = (
            '<path d="M62 330 V250 h30 v-40 h26 v60 h22 v-90 h34 v90 h18 v-50 h30 v80 h28 v-30 h20 V330 Z" '
            'fill="#8E3B2A" opacity="0.85"/>'
            '<g fill="#FFD27A">'
            + "".join(
                f'<rect x="{x}" y="{y}" width="6" height="8"/>'
                for x, y in [(132, 200), (150, 220), (176, 240), (206, 260), (248, 280), (100, 280)]
            )
            + "</g>"
        )
    return f"""<g>
<rect x="50" y="70" width="230" height="280" rx="18" fill="#7A3F1D"/>
<rect x="62" y="82" width="206" height="256" rx="10" fill="url(#sunset)"/>
<circle cx="196" cy="{250 if skyline else 232}" r="42" fill="#FFE6A6" opacity="0.95"/>
{city}
<rect x="160" y="82" width="10" height="256" fill="#7A3F1D"/>
<rect x="62" y="205" width="206" height="10" fill="#7A3F1D"/>
<rect x="40" y="346" width="250" height="16" rx="6" fill="#6B3416"/>
</g>"""


def _string_lights() -> str:
    bulbs = "".join(
        f'<circle cx="{x}" cy="{40 + 18 * ((x // 64) % 2)}" r="9" fill="#FFE08A"/>'
        f'<circle cx="{x}" cy="{40 + 18 * ((x // 64) % 2)}" r="20" fill="#FFE08A" opacity="0.25"/>'
        for x in range(40, 1000, 64)
    )
    return f'<path d="M0 36 Q256 70 512 40 T1024 40" stroke="#6B3416" stroke-width="3" fill="none"/>{bulbs}'


def _stars() -> str:
    def star(cx: int, cy: int, r: int) -> str:
        import math

        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.45
            ang = math.pi / 2 + i * math.pi / 5
            pts.append(f"{cx + rad * math.cos(ang):.1f},{cy - rad * math.sin(ang):.1f}")
        return f'<polygon points="{" ".join(pts)}" fill="#FFD34D" stroke="#C9771E" stroke-width="3"/>'

    return star(330, 110, 26) + star(700, 95, 22) + star(380, 190, 16) + star(660, 180, 14)


def _prop(name: str) -> str:
    pieces = {
        # wall, right column
        "calendar": '<g><rect x="790" y="90" width="170" height="150" rx="10" fill="#FFF6E6" stroke="#7A3F1D" '
        'stroke-width="4"/><rect x="790" y="90" width="170" height="36" rx="10" fill="#D9534F"/>'
        + "".join(
            f'<rect x="{806 + 30 * (i % 5)}" y="{138 + 24 * (i // 5)}" width="20" height="16" rx="3" '
            f'fill="{"#E8863A" if i in (1, 3, 6, 8, 11) else "#F1D9B5"}"/>'
            for i in range(15)
        )
        + "</g>",
        "checklist": '<g><rect x="800" y="262" width="150" height="180" rx="10" fill="#FFF9EE" stroke="#7A3F1D" '
        'stroke-width="4"/>'
        + "".join(
            f'<rect x="816" y="{284 + 38 * i}" width="22" height="22" rx="4" fill="none" stroke="#9C5B2E" '
            f'stroke-width="3"/><path d="M820 {295 + 38 * i} l6 7 l12 -14" stroke="#3E9B5F" stroke-width="4" '
            f'fill="none"/><rect x="848" y="{290 + 38 * i}" width="86" height="9" rx="4" fill="#E2C9A6"/>'
            for i in range(4)
        )
        + "</g>",
        "sticky_notes": '<g><rect x="880" y="462" width="56" height="56" fill="#FFE066" transform="rotate(6 908 490)"/>'
        '<rect x="812" y="470" width="56" height="56" fill="#FFB17A" transform="rotate(-5 840 498)"/></g>',
        "certificate": '<g><rect x="60" y="520" width="170" height="120" rx="6" fill="#FFF6DD" stroke="#B8862B" '
        'stroke-width="6"/><rect x="84" y="548" width="120" height="10" rx="5" fill="#D9B77A"/>'
        '<rect x="84" y="570" width="96" height="8" rx="4" fill="#E6CFA0"/><circle cx="190" cy="612" r="16" '
        'fill="#E8863A"/></g>',
        "photo_frame": '<g><rect x="76" y="392" width="130" height="104" rx="8" fill="#8A4B24"/>'
        '<rect x="88" y="404" width="106" height="80" rx="4" fill="#FBD38D"/>'
        '<circle cx="124" cy="436" r="14" fill="#E8863A"/><circle cx="160" cy="440" r="12" fill="#C9733A"/>'
        '<path d="M96 484 q45 -40 90 0 z" fill="#B5523B"/></g>',
        "trophy": '<g><rect x="835" y="590" width="130" height="14" rx="5" fill="#6B3416"/>'
        '<path d="M870 500 h60 v30 a30 30 0 0 1 -60 0 z" fill="#F5B731" stroke="#B07A12" stroke-width="4"/>'
        '<path d="M870 510 h-16 a14 14 0 0 0 16 22 M930 510 h16 a14 14 0 0 1 -16 22" stroke="#B07A12" '
        'stroke-width="5" fill="none"/><rect x="892" y="558" width="16" height="18" fill="#B07A12"/>'
        '<rect x="876" y="574" width="48" height="16" rx="3" fill="#8A5A10"/></g>',
        "medal": '<g><path d="M268 380 l24 60 l24 -60" stroke="#D9534F" stroke-width="12" fill="none"/>'
        '<circle cx="292" cy="458" r="26" fill="#F5B731" stroke="#B07A12" stroke-width="4"/>'
        '<circle cx="292" cy="458" r="11" fill="#FFE08A"/></g>',
        "hologram": '<g><rect x="770" y="110" width="210" height="250" rx="16" fill="url(#holo)" stroke="#FFF1C4" '
        'stroke-width="3"/>'
        + "".join(
            f'<rect x="794" y="{140 + 34 * i}" width="{150 - 22 * (i % 3)}" height="10" rx="5" fill="#FFF7E0" '
            f'opacity="0.8"/>'
            for i in range(5)
        )
        + '<circle cx="930" cy="320" r="24" fill="none" stroke="#FFF7E0" stroke-width="5" opacity="0.85"/></g>',
        # desk, left
        "laptop": '<g><path d="M150 712 h250 l-14 150 h-222 z" fill="#5B6570"/><path d="M158 720 h234 l-12 136 '
        'h-210 z" fill="#727E8A"/><circle cx="275" cy="790" r="16" fill="#FFD27A" opacity="0.9"/>'
        '<rect x="120" y="858" width="310" height="18" rx="8" fill="#4A525B"/></g>',
        "books": '<g><rect x="24" y="792" width="120" height="26" rx="4" fill="#3E7CB1"/>'
        '<rect x="32" y="766" width="108" height="26" rx="4" fill="#D9534F"/>'
        '<rect x="20" y="740" width="116" height="26" rx="4" fill="#3E9B5F"/>'
        '<rect x="40" y="716" width="96" height="24" rx="4" fill="#F2A541"/></g>',
        "code_window": '<g><rect x="24" y="600" width="150" height="110" rx="10" fill="#3B2A25"/>'
        + "".join(
            f'<rect x="{40 + 14 * (i % 2)}" y="{620 + 16 * i}" width="{90 - 12 * (i % 3)}" height="7" rx="3" '
            f'fill="{("#FFB347", "#7FD18B", "#FFE08A")[i % 3]}"/>'
            for i in range(5)
        )
        + "</g>",
        "dumbbell": '<g><rect x="560" y="956" width="120" height="14" rx="7" fill="#555"/>'
        '<rect x="548" y="936" width="26" height="54" rx="6" fill="#333"/>'
        '<rect x="666" y="936" width="26" height="54" rx="6" fill="#333"/></g>',
        "running_shoes": '<g><path d="M430 872 q0 -36 36 -36 l36 18 q36 4 40 18 z" fill="#E8863A"/>'
        '<rect x="428" y="868" width="116" height="10" rx="5" fill="#FFF6E6"/></g>',
        "paint_palette": '<g><ellipse cx="230" cy="900" rx="70" ry="30" fill="#E9C79A"/>'
        '<circle cx="200" cy="892" r="9" fill="#D9534F"/><circle cx="226" cy="884" r="9" fill="#3E7CB1"/>'
        '<circle cx="254" cy="890" r="9" fill="#F5B731"/><circle cx="270" cy="908" r="9" fill="#3E9B5F"/></g>',
        "guitar": '<g><rect x="196" y="520" width="16" height="200" fill="#6B3416" transform="rotate(-12 204 620)"/>'
        '<ellipse cx="186" cy="760" rx="52" ry="62" fill="#C9733A"/><ellipse cx="186" cy="760" rx="16" ry="16" '
        'fill="#4A2511"/></g>',
        "globe": '<g><circle cx="960" cy="720" r="44" fill="#3E7CB1"/><path d="M930 700 q20 -20 40 0 q10 20 -10 30 '
        'q-20 10 -30 -30 z" fill="#3E9B5F"/><rect x="950" y="764" width="20" height="40" fill="#6B3416"/></g>',
        "chef_hat": '<g><ellipse cx="120" cy="600" rx="46" ry="30" fill="#FFFFFF"/>'
        '<rect x="92" y="604" width="56" height="34" rx="6" fill="#FFFFFF" stroke="#E2C9A6" stroke-width="3"/></g>',
        "meditation_cushion": '<g><ellipse cx="140" cy="980" rx="110" ry="34" fill="#B5523B"/>'
        '<ellipse cx="140" cy="968" rx="96" ry="22" fill="#D06B4C"/></g>',
        # desk, right
        "notebook": '<g><rect x="640" y="872" width="150" height="40" rx="6" fill="#FFF6E6" stroke="#9C5B2E" '
        'stroke-width="3" transform="rotate(-4 715 892)"/><rect x="650" y="880" width="60" height="6" rx="3" '
        'fill="#E2C9A6"/></g>',
        "mug": '<g><rect x="790" y="790" width="64" height="74" rx="10" fill="#F2A541" stroke="#B5523B" '
        'stroke-width="4"/><path d="M854 806 q26 2 22 24 q-2 18 -22 18" stroke="#B5523B" stroke-width="7" '
        'fill="none"/><path d="M806 772 q8 -16 0 -30 M830 772 q8 -16 0 -30" stroke="#FFF1C4" stroke-width="4" '
        'fill="none" opacity="0.8"/></g>',
        "lamp": '<g><rect x="930" y="846" width="70" height="16" rx="6" fill="#6B3416"/>'
        '<rect x="958" y="640" width="12" height="210" fill="#6B3416"/>'
        '<path d="M900 640 l40 -90 h56 l24 90 z" fill="#E8863A" stroke="#9C4A1C" stroke-width="4"/>'
        '<ellipse cx="960" cy="640" rx="60" ry="12" fill="#FFF1C4"/></g>',
        "plant": '<g><path d="M700 820 l12 48 h48 l12 -48 z" fill="#C9733A"/>'
        '<path d="M736 820 q-40 -40 -26 -90 q20 30 26 90 q10 -70 40 -96 q6 50 -40 96 q40 -20 60 -10 '
        'q-20 20 -60 10" fill="#3E9B5F"/></g>',
        "big_plant": '<g><path d="M30 900 l16 124 h100 l16 -124 z" fill="#B5523B"/>'
        '<path d="M96 900 q-80 -60 -62 -170 q46 70 62 170 q-8 -120 54 -190 q26 90 -54 190 q54 -90 108 -110 '
        'q-8 80 -108 110" fill="#2F7D4A"/></g>',
        "organised_desk": '<g><rect x="560" y="900" width="60" height="12" rx="4" fill="#E8863A"/>'
        '<rect x="566" y="888" width="48" height="12" rx="4" fill="#3E7CB1"/>'
        '<rect x="572" y="876" width="36" height="12" rx="4" fill="#FFF6E6"/></g>',
        "stars": _stars(),
        "string_lights": _string_lights(),
        "skyline": "",  # drawn inside the window
    }
    return pieces.get(name, "")


WALL_LAYER = (
    "string_lights",
    "stars",
    "calendar",
    "checklist",
    "sticky_notes",
    "certificate",
    "photo_frame",
    "medal",
    "hologram",
    "trophy",
    "code_window",
    "chef_hat",
    "guitar",
)
DESK_LAYER = (
    "books",
    "running_shoes",
    "laptop",
    "notebook",
    "organised_desk",
    "mug",
    "plant",
    "globe",
    "lamp",
    "paint_palette",
)
FLOOR_LAYER = ("big_plant", "dumbbell", "meditation_cushion")


def scene_svg(spec: RenderSpec, palette: dict[str, str], size: int = 1024) -> str:
    props = set(spec.props)
    avatar = base64.b64encode(avatar_svg(spec).encode()).decode()
    wall = "".join(_prop(p) for p in WALL_LAYER if p in props)
    desk = "".join(_prop(p) for p in DESK_LAYER if p in props)
    floor = "".join(_prop(p) for p in FLOOR_LAYER if p in props)
    glow = '<rect width="1024" height="1024" fill="url(#lampglow)"/>' if "lamp" in props else ""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
 width="{size}" height="{size}" viewBox="0 0 1024 1024">
{_defs(palette)}
<rect width="1024" height="1024" fill="url(#wall)"/>
{_window("skyline" in props)}
{glow}
{wall}
<rect width="1024" height="1024" fill="url(#halo)"/>
<image x="142" y="150" width="740" height="740" xlink:href="data:image/svg+xml;base64,{avatar}"/>
<rect x="0" y="862" width="1024" height="162" fill="url(#desk)"/>
<rect x="0" y="862" width="1024" height="12" fill="#B8733E"/>
{floor}
{desk}
</svg>"""


def render_png(spec: RenderSpec, palette: dict[str, str], size: int = 1024) -> bytes:
    import resvg_py

    png = resvg_py.svg_to_bytes(
        svg_string=scene_svg(spec, palette, size), width=size, height=size, skip_system_fonts=True
    )
    return bytes(png)

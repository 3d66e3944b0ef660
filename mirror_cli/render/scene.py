"""The static scene around the character: a warm, cosy workspace whose props follow progress.
Two layers, both independent of who sits in it: the background (wall, window, wall props,
light, the character's cast shadow), drawn out of focus for depth of field, and the desk in
front (desk and floor props, contact shadows). The compositor renders each once per
(stage look, props, palette, size) and caches it."""

from __future__ import annotations

from dataclasses import dataclass

DESK_TOP = 862


@dataclass(frozen=True)
class Pose:
    """Where the figure sits: avatar units to frame pixels (at 1024), the neck's place, a tilt."""

    scale: float
    x: float
    y: float
    tilt: float


@dataclass(frozen=True)
class StageLook:
    pose: Pose
    light: str  # sunset | dusk | golden
    outfit: tuple[str, ...] = ()


UPRIGHT = Pose(3.3, 512, 700, 0.0)
STAGE_LOOKS: dict[str, StageLook] = {
    # shoulders drawn in, head tilted: looking into the mirror for the first time
    "newReflection": StageLook(Pose(3.2, 512, 712, -4.5), "sunset"),
    # leaning in: closer to the camera, lower, ready to work
    "firstWeek": StageLook(Pose(3.6, 512, 742, 0.0), "sunset"),
    "twoWeeks": StageLook(UPRIGHT, "sunset"),
    # relaxed, at ease: a friendly tilt
    "month": StageLook(Pose(3.3, 512, 702, 3.5), "sunset", ("enamel_pin",)),
    # grounded and composed in the lamplight of a calm evening
    "quarter": StageLook(Pose(3.3, 504, 704, -1.5), "dusk", ("headphones",)),
    # upright, chin up, at home in golden-hour light
    "halfYear": StageLook(Pose(3.22, 512, 682, 0.0), "golden", ("scarf", "star_pin")),
}


def stage_look(stage: str) -> StageLook:
    return STAGE_LOOKS.get(stage, StageLook(UPRIGHT, "sunset"))


def _hex(c: str) -> str:
    return c.lstrip("#")


def _mix(hex_a: str, hex_b: str, t: float) -> str:
    a = [int(_hex(hex_a)[i : i + 2], 16) for i in (0, 2, 4)]
    b = [int(_hex(hex_b)[i : i + 2], 16) for i in (0, 2, 4)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


SKIES = {
    "sunset": (("0", "#F47B3A"), ("0.6", "#F9B45B"), ("1", "#FCE1A2")),
    "dusk": (("0", "#5E3763"), ("0.55", "#C8574A"), ("1", "#F39A4C")),
    "golden": (("0", "#FFB347"), ("0.5", "#FFD27A"), ("1", "#FFF1C4")),
}


def _defs(p: dict[str, str], light: str) -> str:
    top, bottom = p["background_top"], p["background_bottom"]
    if light == "dusk":
        top, bottom = _mix(top, "#A8482A", 0.4), _mix(bottom, "#E0893F", 0.3)
    elif light == "golden":
        top, bottom = _mix(top, "#FFC45C", 0.35), _mix(bottom, "#FFE7A8", 0.35)
    lamp = {"dusk": ("0.95", "420"), "golden": ("0.5", "300")}.get(light, ("0.85", "360"))
    sky = "".join(f'<stop offset="{o}" stop-color="{c}"/>' for o, c in SKIES[light])
    return f"""<defs>
<linearGradient id="wall" x1="0" y1="0" x2="0" y2="1">
 <stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>
</linearGradient>
<radialGradient id="halo" cx="512" cy="420" r="460" gradientUnits="userSpaceOnUse">
 <stop offset="0" stop-color="{p["glow"]}" stop-opacity="{0.5 if light == "dusk" else 0.95}"/><stop offset="1" stop-color="{p["glow"]}" stop-opacity="0"/>
</radialGradient>
<radialGradient id="lampglow" cx="930" cy="610" r="{lamp[1]}" gradientUnits="userSpaceOnUse">
 <stop offset="0" stop-color="#FFF1C4" stop-opacity="{lamp[0]}"/><stop offset="1" stop-color="#FFB347" stop-opacity="0"/>
</radialGradient>
<radialGradient id="vignette" cx="512" cy="470" r="720" gradientUnits="userSpaceOnUse">
 <stop offset="0.55" stop-color="#5a2408" stop-opacity="0"/><stop offset="1" stop-color="#5a2408" stop-opacity="{0.55 if light == "dusk" else 0.28}"/>
</radialGradient>
<linearGradient id="sunset" x1="0" y1="0" x2="0" y2="1">{sky}</linearGradient>
<linearGradient id="rays" x1="0" y1="0" x2="1" y2="0.6">
 <stop offset="0" stop-color="#FFF4CC" stop-opacity="0.8"/><stop offset="1" stop-color="#FFF4CC" stop-opacity="0"/>
</linearGradient>
<linearGradient id="desk" x1="0" y1="0" x2="0" y2="1">
 <stop offset="0" stop-color="{p["desk"]}"/><stop offset="1" stop-color="#5E3016"/>
</linearGradient>
<linearGradient id="holo" x1="0" y1="0" x2="1" y2="1">
 <stop offset="0" stop-color="#FFE8B0" stop-opacity="0.85"/><stop offset="1" stop-color="#FF9E5E" stop-opacity="0.35"/>
</linearGradient>
<filter id="dof" x="-5%" y="-5%" width="110%" height="110%"><feGaussianBlur stdDeviation="3.2"/></filter>
<radialGradient id="shadow"><stop offset="0.55" stop-color="#6a2a0c" stop-opacity="0.2"/><stop offset="1" stop-color="#6a2a0c" stop-opacity="0"/></radialGradient>
<filter id="contact" x="-20%" y="-200%" width="140%" height="500%"><feGaussianBlur stdDeviation="9"/></filter>
</defs>"""


def _window(skyline: bool, light: str) -> str:
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
    if light == "dusk":
        sun = '<circle cx="110" cy="128" r="16" fill="#FFF1D6" opacity="0.9"/><circle cx="222" cy="112" r="3" fill="#FFF1D6"/>'
    elif light == "golden":
        sun = '<circle cx="196" cy="200" r="58" fill="#FFF6D8" opacity="0.95"/><circle cx="196" cy="200" r="90" fill="#FFF6D8" opacity="0.3"/>'
    else:
        sun = f'<circle cx="196" cy="{250 if skyline else 232}" r="42" fill="#FFE6A6" opacity="0.95"/>'
    return f"""<g>
<rect x="50" y="70" width="230" height="280" rx="18" fill="#7A3F1D"/>
<rect x="62" y="82" width="206" height="256" rx="10" fill="url(#sunset)"/>
{sun}
{city}
<rect x="160" y="82" width="10" height="256" fill="#7A3F1D"/>
<rect x="62" y="205" width="206" height="10" fill="#7A3F1D"/>
<rect x="40" y="346" width="250" height="16" rx="6" fill="#6B3416"/>
</g>"""


def _rays() -> str:
    """Golden-hour sunbeams from the window across the room."""
    return (
        '<g opacity="0.9"><path d="M268 90 L1024 420 L1024 640 L268 330 Z" fill="url(#rays)"/>'
        '<path d="M268 220 L1024 700 L1024 860 L268 338 Z" fill="url(#rays)" opacity="0.7"/>'
        + "".join(
            f'<circle cx="{x}" cy="{y}" r="{r}" fill="#FFF6D8" opacity="0.7"/>'
            for x, y, r in [(420, 250, 4), (520, 330, 3), (640, 300, 5), (760, 430, 3), (880, 470, 4), (590, 190, 3)]
        )
        + "</g>"
    )


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
    """The SVG of one prop of the workspace (empty for an unknown name)."""
    if name == "stars":
        return _stars()
    if name == "string_lights":
        return _string_lights()
    return _PIECES.get(name, "")


_PIECES: dict[str, str] = {
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
    "skyline": "",  # drawn inside the window
}


def _extra_prop(name: str) -> str:
    """Props added for the later stages: a wall shelf of keepsakes and a hanging plant."""
    pieces = {
        "wall_shelf": '<g><rect x="770" y="360" width="210" height="14" rx="5" fill="#6B3416"/>'
        '<rect x="786" y="318" width="18" height="42" rx="3" fill="#3E7CB1"/><rect x="806" y="324" width="16" height="36" rx="3" fill="#D9534F"/>'
        '<rect x="824" y="314" width="20" height="46" rx="3" fill="#F2A541"/>'
        '<path d="M878 360 l8 -34 h36 l8 34 z" fill="#C9733A"/><path d="M904 326 q-24 -30 -6 -60 q14 30 6 60 q4 -40 30 -52 q2 34 -30 52" fill="#3E9B5F"/>'
        '<circle cx="956" cy="340" r="16" fill="#F5B731" stroke="#B07A12" stroke-width="3"/></g>',
        "hanging_plant": '<g><path d="M640 0 V120" stroke="#6B3416" stroke-width="3"/>'
        '<path d="M612 120 h56 l-8 34 h-40 z" fill="#B5523B"/>'
        '<path d="M620 150 q-30 40 -16 96 M640 154 q-6 60 10 110 M660 150 q30 34 22 90" stroke="#2F7D4A" stroke-width="7" fill="none" stroke-linecap="round"/>'
        '<g fill="#3E9B5F">'
        + "".join(
            f'<ellipse cx="{x}" cy="{y}" rx="9" ry="5" transform="rotate({a} {x} {y})"/>'
            for x, y, a in [
                (610, 190, -40),
                (606, 226, 30),
                (642, 210, 70),
                (650, 250, -60),
                (676, 200, 40),
                (684, 234, -30),
            ]
        )
        + "</g></g>",
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
EXTRA_WALL = ("wall_shelf", "hanging_plant")
# desk props whose feet get a contact shadow: (prop, centre x, half width)
PROP_BASES = (("laptop", 290, 150), ("mug", 836, 44), ("lamp", 975, 46), ("plant", 742, 44), ("notebook", 730, 80))


def _cast_shadow(pose: Pose) -> str:
    """The character's soft shadow on the wall, thrown to the right by the window light
    (gradient-edged shapes: a blur filter this size costs resvg half a second)."""
    s, x, y = pose.scale, pose.x + 22, pose.y
    head_cy, head_r = y - 80 * s, 78 * s
    return (
        f'<g fill="url(#shadow)">'
        f'<ellipse cx="{x + 70}" cy="{head_cy:.0f}" rx="{head_r * 1.25:.0f}" ry="{head_r * 1.4:.0f}"/>'
        f'<ellipse cx="{x + 60}" cy="{y + 150}" rx="{135 * s:.0f}" ry="{105 * s:.0f}"/></g>'
    )


def background_svg(look: StageLook, props: frozenset[str], palette: dict[str, str], size: int) -> str:
    """Wall, window, wall props and light, out of focus; no character."""
    wall = "".join(_prop(p) for p in WALL_LAYER if p in props)
    extra = "".join(_extra_prop(p) for p in EXTRA_WALL if p in props)
    glow = '<rect width="1024" height="1024" fill="url(#lampglow)"/>' if "lamp" in props else ""
    rays = _rays() if look.light == "golden" else ""
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 1024 1024">
{_defs(palette, look.light)}
<g filter="url(#dof)">
<rect x="-20" y="-20" width="1064" height="1064" fill="url(#wall)"/>
{_window("skyline" in props, look.light)}
{glow}
{wall}{extra}
<rect width="1024" height="1024" fill="url(#halo)"/>
{rays}
{_cast_shadow(look.pose)}
<rect width="1024" height="1024" fill="url(#vignette)"/>
</g>
</svg>"""


def foreground_svg(look: StageLook, props: frozenset[str], palette: dict[str, str], size: int) -> str:
    """The desk in front of the character, in focus, with contact shadows; transparent above."""
    desk = "".join(_prop(p) for p in DESK_LAYER if p in props)
    floor = "".join(_prop(p) for p in FLOOR_LAYER if p in props)
    bases = "".join(
        f'<ellipse cx="{x}" cy="{DESK_TOP + 14}" rx="{rx}" ry="9"/>' for name, x, rx in PROP_BASES if name in props
    )
    px = look.pose.x
    return f"""<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 1024 1024">
{_defs(palette, look.light)}
<rect x="0" y="{DESK_TOP}" width="1024" height="{1024 - DESK_TOP}" fill="url(#desk)"/>
<rect x="0" y="{DESK_TOP}" width="1024" height="12" fill="#C98249"/>
<ellipse cx="{px + 30}" cy="{DESK_TOP + 16}" rx="{110 * look.pose.scale:.0f}" ry="14" fill="#3a1606" opacity="0.45" filter="url(#contact)"/>
<g fill="#3a1606" opacity="0.35" filter="url(#contact)">{bases}</g>
{floor}
{desk}
</svg>"""

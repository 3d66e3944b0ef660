"""The character: DiceBear's avataaars with this project's own open, expressive eyes, soft
gradient shading (skin, hoodie, cheeks), a rim light from the window, and per-stage outfit
details. The style object is built once per process, under a lock, whatever the number of
threads asking for it."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..models import RenderSpec

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
IRIS_HEX = {
    "brown": "6b4423",
    "dark brown": "3f2818",
    "hazel": "8e6b35",
    "amber": "b3782a",
    "green": "4f7d43",
    "blue": "3f6fa8",
    "grey": "6f7f8c",
    "gray": "6f7f8c",
    "black": "2b1d16",
}

# The head's skin path in avatar units (DiceBear's avataaars canvas): x 74..206, y 36..186.
HEAD_BOX = (74.0, 36.0, 206.0, 186.0)
NECK = (140.0, 199.0)  # where the figure is anchored and turned


@dataclass(frozen=True)
class EyeShape:
    """An open eye: how much of the eye the upper and lower lids cover (0..1 of its height),
    where the iris looks, how big it is, and whether a sparkle sits in it."""

    upper: float
    lower: float
    look: tuple[float, float]
    iris: float
    sparkle: bool = False
    rank: int = 0  # how much joy the eyes show; rises with the stages


EYES: dict[str, EyeShape] = {
    "openCurious": EyeShape(0.0, 0.06, (1.6, -1.4), 6.2, rank=0),
    "openFocused": EyeShape(0.3, 0.08, (0.0, 0.6), 6.4, rank=1),
    "openBright": EyeShape(0.06, 0.14, (0.0, 0.0), 6.9, rank=2),
    "openHappy": EyeShape(0.08, 0.3, (0.0, -0.4), 7.0, rank=3),
    "openWarm": EyeShape(0.16, 0.3, (0.0, 0.0), 6.9, rank=4),
    "openRadiant": EyeShape(0.04, 0.26, (0.0, -0.8), 7.3, sparkle=True, rank=5),
}
EYE_RX, EYE_RY = 10.5, 12.0
EYE_CENTRES = ((16.0, 14.0), (68.0, 14.0))  # inside the eyes component box (84 x 36)


def _el(name: str, attrs: dict[str, Any] | None = None, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "type": "element", "attributes": attrs or {}}
    if children:
        node["children"] = children
    return node


def _stops(*stops: tuple[float, str, float]) -> list[dict[str, Any]]:
    return [_el("stop", {"offset": f"{o}", "stop-color": c, "stop-opacity": f"{a}"}) for o, c, a in stops]


SKIN = {"type": "color", "name": "skin"}


def _eye_variant(shape: EyeShape) -> dict[str, Any]:
    inner: list[dict[str, Any]] = []
    outline: list[dict[str, Any]] = []
    for cx, cy in EYE_CENTRES:
        top, bottom = cy - EYE_RY, cy + EYE_RY
        ix, iy, r = cx + shape.look[0], cy + shape.look[1], shape.iris
        inner += [
            _el(
                "ellipse",
                {"cx": f"{cx}", "cy": f"{cy}", "rx": f"{EYE_RX}", "ry": f"{EYE_RY}", "fill": "url(#mr-sclera)"},
            ),
            _el("circle", {"cx": f"{ix}", "cy": f"{iy}", "r": f"{r}", "fill": {"type": "color", "name": "iris"}}),
            _el("circle", {"cx": f"{ix}", "cy": f"{iy}", "r": f"{r}", "fill": "url(#mr-iris)"}),
            _el("circle", {"cx": f"{ix}", "cy": f"{iy}", "r": f"{r * 0.46:.2f}", "fill": "#1a0f0a"}),
            _el(
                "circle",
                {"cx": f"{ix - r * 0.36:.2f}", "cy": f"{iy - r * 0.4:.2f}", "r": f"{r * 0.3:.2f}", "fill": "white"},
            ),
            _el(
                "circle",
                {
                    "cx": f"{ix + r * 0.38:.2f}",
                    "cy": f"{iy + r * 0.32:.2f}",
                    "r": f"{r * 0.13:.2f}",
                    "fill": "white",
                    "fill-opacity": ".85",
                },
            ),
        ]
        if shape.sparkle:
            sx, sy, s = ix + r * 0.42, iy - r * 0.5, r * 0.42
            inner.append(
                _el(
                    "path",
                    {
                        "d": f"M{sx} {sy - s}Q{sx} {sy} {sx + s} {sy}Q{sx} {sy} {sx} {sy + s}Q{sx} {sy} {sx - s} {sy}Q{sx} {sy} {sx} {sy - s}z",
                        "fill": "white",
                    },
                )
            )
        if shape.upper > 0:
            y = top + 2 * EYE_RY * shape.upper
            inner.append(
                _el("path", {"d": f"M{cx - 12} {top - 1}H{cx + 12}V{y}Q{cx} {y + 2.2} {cx - 12} {y}z", "fill": SKIN})
            )
            lash = f"M{cx - EYE_RX - 0.5} {y}Q{cx} {y + 2.2} {cx + EYE_RX + 0.5} {y}"
        else:
            lash = f"M{cx - EYE_RX - 0.5} {cy - 1}Q{cx - EYE_RX} {top - 0.6} {cx} {top - 0.6}Q{cx + EYE_RX} {top - 0.6} {cx + EYE_RX + 0.5} {cy - 1}"
        if shape.lower > 0:
            y = bottom - 2 * EYE_RY * shape.lower
            inner.append(
                _el(
                    "path",
                    {
                        "d": f"M{cx - 12} {bottom + 1}V{y + 2.5}Q{cx} {y - 3} {cx + 12} {y + 2.5}V{bottom + 1}z",
                        "fill": SKIN,
                    },
                )
            )
            outline.append(
                _el(
                    "path",
                    {
                        "d": f"M{cx - EYE_RX + 1} {y + 2.2}Q{cx} {y - 2.6} {cx + EYE_RX - 1} {y + 2.2}",
                        "stroke": "#5a2d16",
                        "stroke-opacity": ".45",
                        "stroke-width": "1.2",
                        "stroke-linecap": "round",
                    },
                )
            )
        outline.append(
            _el(
                "path",
                {"d": lash, "stroke": "#24140c", "stroke-width": "2.4", "stroke-linecap": "round", "fill": "none"},
            )
        )
    # No clipPath (resvg rasterises a mask per use): the lids are skin-coloured and blend in.
    return {"elements": [*inner, *outline]}


_SHADING_DEFS = _el(
    "defs",
    {},
    [
        _el(
            "radialGradient",
            {"id": "mr-blush", "cx": ".5", "cy": ".5", "r": ".5"},
            _stops((0, "#ff7a6b", 0.42), (1, "#ff7a6b", 0)),
        ),
        _el(
            "radialGradient",
            {"id": "mr-iris", "cx": ".5", "cy": ".45", "r": ".55"},
            _stops((0, "#ffffff", 0.18), (0.55, "#000000", 0), (1, "#000000", 0.5)),
        ),
        _el(
            "linearGradient",
            {"id": "mr-sclera", "x1": "0", "y1": "0", "x2": "0", "y2": "1"},
            _stops((0, "#e9ddd3", 1), (0.35, "#ffffff", 1), (1, "#f6efe9", 1)),
        ),
    ],
)

# The light on the figure: soft shading and a rim light from the window, drawn over the head
# and hoodie shapes (the same for everyone) as one cached layer, not per avatar: gradients over
# large areas are the costliest thing resvg draws.
HEAD_D = (
    "M140 36a56 56 0 0 0-56 56v6.17A12 12 0 0 0 74 110v14a12 12 0 0 0 10.3 11.88A56 56 0 0 0 116 180.6"
    "V199h48v-18.38a56 56 0 0 0 31.7-44.73A12 12 0 0 0 206 124v-14a12 12 0 0 0-10-11.83V92a56 56 0 0 0-56-56"
)
BODY_D = (
    "M116 184.7C100.48 188.4 88.9 195.53 85.23 204.15A72 72 0 0 0 40 271v9h200v-9"
    "a72 72 0 0 0-45.23-66.86C191.1 195.53 179.52 188.39 164 184.7v17.3a24 24 0 1 1-48 0z"
)
LIGHT_DEFS = (
    '<radialGradient id="mr-skin" cx=".36" cy=".34" r=".78"><stop offset="0" stop-color="#fff4e0" stop-opacity=".2"/>'
    '<stop offset=".5" stop-color="#fff4e0" stop-opacity="0"/><stop offset=".82" stop-color="#6a2a0c" stop-opacity=".1"/>'
    '<stop offset="1" stop-color="#4a1c06" stop-opacity=".34"/></radialGradient>'
    '<linearGradient id="mr-rim" x1="0" y1="0" x2="1" y2="0"><stop offset="0" stop-color="#ffe6b0" stop-opacity=".8"/>'
    '<stop offset=".09" stop-color="#ffd58a" stop-opacity=".25"/><stop offset=".16" stop-color="#ffd58a" stop-opacity="0"/>'
    "</linearGradient>"
    '<radialGradient id="mr-cloth" cx=".34" cy=".2" r=".95"><stop offset="0" stop-color="#fff1d6" stop-opacity=".3"/>'
    '<stop offset=".45" stop-color="#fff1d6" stop-opacity="0"/><stop offset="1" stop-color="#3a1404" stop-opacity=".42"/>'
    "</radialGradient>"
)
# The head's light fades out above the brows, where hair may cover it, and the whole layer is
# softened a little: no hard outline of the head shows through long hair. (Masks and blurs are
# free here: the layer is rendered once per pose.)
LIGHT_DEFS += (
    '<linearGradient id="mr-fade" gradientUnits="userSpaceOnUse" x1="0" y1="70" x2="0" y2="118">'
    '<stop offset="0" stop-color="#fff" stop-opacity="0"/><stop offset="1" stop-color="#fff" stop-opacity="1"/>'
    '</linearGradient><mask id="mr-below-hair" maskUnits="userSpaceOnUse" x="0" y="0" width="280" height="280">'
    '<rect width="280" height="280" fill="url(#mr-fade)"/></mask>'
    '<filter id="mr-soft" x="-10%" y="-10%" width="120%" height="120%"><feGaussianBlur stdDeviation="1.6"/></filter>'
)
LIGHT = (
    f'<g filter="url(#mr-soft)"><path d="{BODY_D}" fill="url(#mr-cloth)"/><path d="{BODY_D}" fill="url(#mr-rim)"/>'
    f'<g mask="url(#mr-below-hair)"><path d="{HEAD_D}" fill="url(#mr-skin)"/><path d="{HEAD_D}" fill="url(#mr-rim)"/>'
    "</g></g>"
)

_lock = threading.Lock()
_style_obj: Any = None


def definition() -> dict[str, Any]:
    """avataaars, extended: this project's eyes, shading and cheeks."""
    d: dict[str, Any] = json.loads((resources.files("dicebear_styles") / "avataaars.json").read_text(encoding="utf-8"))
    d["colors"]["iris"] = {"values": ["#6b4423"]}
    eyes = d["components"]["eyes"]["variants"]
    for name, shape in EYES.items():
        eyes[name] = _eye_variant(shape)
    canvas = d["canvas"]["elements"]
    cheeks = _el(
        "g",
        {"id": "cheeks"},
        [
            _el("ellipse", {"cx": f"{x}", "cy": "140", "rx": "14", "ry": "8", "fill": "url(#mr-blush)"})
            for x in (104, 176)
        ],
    )
    at = next(i for i, e in enumerate(canvas) if e.get("name") == "nose")
    d["canvas"]["elements"] = [_SHADING_DEFS, *canvas[:at], cheeks, *canvas[at:]]
    return d


def style() -> Any:
    """The DiceBear style, built once per process (about half a second), thread-safe."""
    global _style_obj
    if _style_obj is None:
        with _lock:
            if _style_obj is None:
                from dicebear import Style

                _style_obj = Style(definition())
    return _style_obj


def _mix(hex_a: str, hex_b: str, t: float) -> str:
    a = [int(hex_a[i : i + 2], 16) for i in (0, 2, 4)]
    b = [int(hex_b[i : i + 2], 16) for i in (0, 2, 4)]
    return "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


def iris_hex(eye_color: str) -> str:
    return IRIS_HEX.get(eye_color.strip().lower(), IRIS_HEX["brown"])


def options(spec: RenderSpec) -> dict[str, Any]:
    a = spec.appearance
    hair = HAIR_HEX[a.hair_color]
    if spec.older:
        hair = _mix(hair, "d9d4d0", 0.6)
    hoodie = a.hoodie_color.lstrip("#").lower()
    opts: dict[str, Any] = {
        "seed": spec.seed,
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
        "irisColor": [iris_hex(a.eye_color)],
    }
    if a.glasses != "none":
        opts["accessoriesVariant"] = a.glasses
        opts["accessoriesColor"] = ["3c2a20"]
    if a.facial_hair != "none":
        opts["facialHairVariant"] = a.facial_hair
    return opts


_METADATA = re.compile(r"<metadata[^>]*>.*?</metadata>", re.S)
_CLIP = re.compile(r' clip-path="url\(#clip-[0-9a-f]+\)"')


def avatar_svg(spec: RenderSpec) -> str:
    """The character alone, 280 x 280 avatar units (DiceBear's canvas)."""
    from dicebear import Avatar

    svg = _CLIP.sub("", _METADATA.sub("", str(Avatar(style(), options(spec)))), count=1)
    return _individual(svg, spec.seed)


def _individual(svg: str, seed: str) -> str:
    """Avataaars share one face: give each person their own proportions (eye spacing and
    size, where eyes, nose and mouth sit), fixed by the seed so every stage keeps them."""
    h = hashlib.sha256(("face:" + seed).encode()).digest()

    def pick(i: int, lo: float, hi: float) -> float:
        return round(lo + (hi - lo) * h[i] / 255, 3)

    eye_sx, eye_sy, eye_dy = pick(0, 0.84, 1.16), pick(1, 0.88, 1.14), pick(2, -5, 5)
    nose_s, mouth_dy, mouth_sx = pick(3, 0.8, 1.45), pick(4, -5, 6), pick(5, 0.85, 1.15)
    moves = {
        "eyes": f"translate(98 {98 + eye_dy}) translate(42 14) scale({eye_sx} {eye_sy}) translate(-42 -14)",
        "nose": f"translate(128 {130 + eye_dy / 2}) translate(12 4) scale({nose_s}) translate(-12 -4)",
        "mouth": f"translate(94 {140 + mouth_dy}) translate(46 19) scale({mouth_sx} 1) translate(-46 -19)",
        "eyebrows": f"translate(91.86 {82 + eye_dy}) translate(48 12) scale({eye_sx} 1) translate(-48 -12)",
    }
    for part, transform in moves.items():
        svg = re.sub(
            rf'<use transform="[^"]*" href="#{part}-', f'<use transform="{transform}" href="#{part}-', svg, count=1
        )
    return svg


# ------------------------------------------------------------------ outfit details (avatar units)
OUTFIT: dict[str, str] = {
    "headphones": (
        '<g id="outfit-headphones"><path d="M74 112 C68 -12 212 -12 206 112" stroke="#3b3440" stroke-width="9" '
        'fill="none" stroke-linecap="round"/><path d="M80 100 C76 4 204 4 200 100" stroke="#e8863a" stroke-width="3" '
        'fill="none"/><rect x="60" y="94" width="26" height="46" rx="11" fill="#3b3440"/>'
        '<rect x="194" y="94" width="26" height="46" rx="11" fill="#3b3440"/>'
        '<rect x="66" y="102" width="14" height="30" rx="6" fill="#e8863a"/>'
        '<rect x="200" y="102" width="14" height="30" rx="6" fill="#e8863a"/></g>'
    ),
    "scarf": (
        '<g id="outfit-scarf"><path d="M104 192 Q140 214 176 192 L182 210 Q140 238 98 210 Z" fill="#f2c14e"/>'
        '<path d="M101 201 Q140 226 179 201" stroke="#c8553d" stroke-width="3" fill="none"/>'
        '<path d="M150 214 L168 216 L164 268 L146 266 Z" fill="#f2c14e"/>'
        '<path d="M148 236 L166 238 M147 250 L165 252" stroke="#c8553d" stroke-width="3"/>'
        '<path d="M104 192 Q140 214 176 192 L182 210 Q140 238 98 210 Z" fill="url(#mr-outfit-shade)"/></g>'
    ),
    "star_pin": (
        '<g id="outfit-star-pin"><circle cx="192" cy="226" r="9" fill="#b07a12"/>'
        '<path d="M192 218 L194.4 223.6 L200.4 224 L195.8 228 L197.2 234 L192 230.8 L186.8 234 L188.2 228 L183.6 224 L189.6 223.6 Z" '
        'fill="#ffd34d"/></g>'
    ),
    "enamel_pin": '<g id="outfit-pin"><circle cx="188" cy="228" r="7" fill="#fff6e6" stroke="#b5523b" stroke-width="2.5"/></g>',
}
OUTFIT_DEFS = (
    '<linearGradient id="mr-outfit-shade" x1="0" y1="0" x2="1" y2="0">'
    '<stop offset="0" stop-color="#fff3c4" stop-opacity=".45"/><stop offset=".4" stop-color="#fff3c4" stop-opacity="0"/>'
    '<stop offset="1" stop-color="#5a2d0c" stop-opacity=".3"/></linearGradient>'
)

"""Fallback avatar sets: the only images shared between users. Read from
``fallback_assets/<style>/manifest.json``; the variant closest to the persona is chosen."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import Persona

SKIN_ORDER = ["pale", "light", "medium", "tan", "brown", "dark"]
HAIR_DARKNESS = {
    "platinum": 0,
    "blonde": 1,
    "grey": 1,
    "red": 2,
    "auburn": 3,
    "brown": 4,
    "darkBrown": 5,
    "black": 6,
}


@dataclass(frozen=True)
class FallbackEntry:
    target: str
    variant: str
    file: str
    sha256: str
    traits: dict[str, Any]


class FallbackSet:
    def __init__(self, root: Path, style: str) -> None:
        self.folder = root / style
        self.manifest_path = self.folder / "manifest.json"
        self._entries: list[FallbackEntry] | None = None

    @property
    def entries(self) -> list[FallbackEntry]:
        if self._entries is None:
            if not self.manifest_path.exists():
                self._entries = []
            else:
                data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
                self._entries = [
                    FallbackEntry(e["stage"], e["variant"], e["file"], e["sha256"], e.get("traits", {}))
                    for e in data.get("entries", [])
                ]
        return self._entries

    def pick(self, target: str, persona: Persona | None) -> Path | None:
        candidates = [e for e in self.entries if e.target == target]
        if not candidates:
            return None

        def distance(e: FallbackEntry) -> float:
            if persona is None:
                return 0.0
            a = persona.appearance
            d = 0.0
            skin = e.traits.get("skin")
            if skin in SKIN_ORDER:
                d += abs(SKIN_ORDER.index(skin) - SKIN_ORDER.index(a.skin))
            hair = e.traits.get("hair_color")
            if hair in HAIR_DARKNESS:
                d += abs(HAIR_DARKNESS[hair] - HAIR_DARKNESS[a.hair_color]) / 2
            if e.traits.get("hair_style") and e.traits.get("hair_style") != a.hair_style:
                d += 0.5
            return d

        best = min(candidates, key=lambda e: (distance(e), e.variant))
        return self.folder / best.file

"""Fallback avatar sets: the only images shared between users. Read from
``<root>/<style>/manifest.json``: the user's own set first (their project's ``fallback_assets``),
then the set shipped in the package; the variant closest to the persona is chosen.

Only approved assets are served: a target is served from a folder when every variant of it there
is approved (by the ``review`` recorded in the manifest, as the shipped set is, or by a designer's
review in the store, see mirror_cli.review); otherwise the next folder serves it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
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
    review: dict[str, Any] = field(default_factory=dict)  # a decision shipped in the manifest

    @property
    def approved_in_manifest(self) -> bool:
        return self.review.get("state") == "approved" and self.review.get("sha256") == self.sha256


# Whether a designer approved this entry of this folder (the store's reviews).
Approver = Callable[[Path, FallbackEntry], bool]


class FallbackFolder:
    """One folder of fallback images with its manifest."""

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
                    FallbackEntry(
                        e["stage"], e["variant"], e["file"], e["sha256"], e.get("traits", {}), e.get("review") or {}
                    )
                    for e in data.get("entries", [])
                ]
        return self._entries


class FallbackSet:
    """Fallback folders in order of preference; a target is served from the first one that has it."""

    def __init__(self, roots: Path | list[Path], style: str, approver: Approver | None = None) -> None:
        self.folders = [FallbackFolder(r, style) for r in ([roots] if isinstance(roots, Path) else roots)]
        self.approver = approver

    def approved(self, folder: FallbackFolder, entry: FallbackEntry) -> bool:
        return entry.approved_in_manifest or (self.approver is not None and self.approver(folder.folder, entry))

    def _serves(self, folder: FallbackFolder, target: str) -> list[FallbackEntry]:
        """The folder's entries for ``target`` when every one of them is approved, else none."""
        candidates = [e for e in folder.entries if e.target == target]
        return candidates if all(self.approved(folder, e) for e in candidates) else []

    def unapproved(self) -> dict[str, list[str]]:
        """Per folder (as a string) the targets it has that are not served for want of approval."""
        out: dict[str, list[str]] = {}
        for f in self.folders:
            targets = sorted({e.target for e in f.entries})
            waiting = [t for t in targets if not self._serves(f, t)]
            if waiting:
                out[str(f.folder)] = waiting
        return out

    @property
    def folder(self) -> Path:
        """The preferred folder (the user's own)."""
        return self.folders[0].folder

    @property
    def entries(self) -> list[FallbackEntry]:
        """Every target's entries from the folder that serves it."""
        out: list[FallbackEntry] = []
        seen: set[str] = set()
        for f in self.folders:
            targets = {e.target for e in f.entries} - seen
            served = [e for t in sorted(targets) for e in self._serves(f, t)]
            out.extend(served)
            seen |= {e.target for e in served}
        return out

    def pick(self, target: str, persona: Persona | None) -> Path | None:
        for f in self.folders:
            candidates = self._serves(f, target)
            if candidates:
                best = min(candidates, key=lambda e: (_distance(e, persona), e.variant))
                return f.folder / best.file
        return None


def _distance(e: FallbackEntry, persona: Persona | None) -> float:
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

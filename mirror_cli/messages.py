"""I-There's messages in the companion's voice, from configs/messages.yaml (no I/O here)."""

from __future__ import annotations

import string
from dataclasses import dataclass

from .config import MessagesConfig, StyleConfig
from .models import Persona, Progress


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:  # an unknown placeholder stays visible, never crashes
        return "{" + key + "}"


def _fill(template: str, fields: dict[str, str]) -> str:
    return string.Formatter().vformat(template, (), _Fields(fields)).strip()


@dataclass(frozen=True)
class LookSummary:
    """What a picture shows, enough to say what changed between two of them."""

    label: str
    expression: str
    scene: str
    cues: tuple[str, ...] = ()


def intro(cfg: MessagesConfig, persona: Persona, target: str, label: str, progress: Progress) -> str:
    voice = cfg.voices[persona.companion.voice]
    return _fill(
        voice.intro[target],
        {
            "name": persona.name.split()[0],
            "companion": persona.companion.name,
            "stage": label,
            "days": str(progress.active_days),
        },
    )


def evolution(cfg: MessagesConfig, persona: Persona, old: LookSummary, new: LookSummary) -> str:
    voice = cfg.voices[persona.companion.voice]
    parts: list[str] = []
    if old.expression != new.expression and "expression" in voice.changes:
        parts.append(
            _fill(
                voice.changes["expression"],
                {"old_expression": old.expression, "new_expression": new.expression},
            )
        )
    if old.scene != new.scene and "scene" in voice.changes:
        parts.append(_fill(voice.changes["scene"], {"new_scene": new.scene}))
    new_cues = [c for c in new.cues if c not in old.cues]
    if new_cues and "achievements" in voice.changes:
        parts.append(_fill(voice.changes["achievements"], {"cues": "; ".join(new_cues)}))
    return _fill(
        voice.evolution,
        {
            "name": persona.name.split()[0],
            "companion": persona.companion.name,
            "old": old.label,
            "new": new.label,
            "changes": " ".join(parts),
        },
    )


def look_of(style: StyleConfig, stage: str, label: str, cues: list[str]) -> LookSummary:
    look = style.stages[stage]
    return LookSummary(
        label=label,
        expression=look.expression.split(",")[0],
        scene=look.story or look.scene,
        cues=tuple(cues),
    )

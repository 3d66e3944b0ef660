"""I-There's messages in the companion's voice, from configs/messages.yaml (no I/O here).

The evolution story compares two real avatars: the expression and setting of their stages, and
the achievement cues each picture was drawn with (stored on its record). It names only what is new
in the later one; when the earlier avatar's cues are unknown (a record made before cues were
stored) it names no cue as new rather than guess."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import MessagesConfig, StyleConfig
from .models import AvatarRecord, Persona, Progress

if TYPE_CHECKING:
    from .config import ConfigSet


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:  # an unknown placeholder stays visible, never crashes
        return "{" + key + "}"


def _fill(template: str, fields: dict[str, str]) -> str:
    return " ".join(string.Formatter().vformat(template, (), _Fields(fields)).split())


@dataclass(frozen=True)
class LookSummary:
    """What a picture shows, enough to say what changed between two of them (``cues`` None:
    not known)."""

    label: str
    expression: str
    scene: str
    cues: tuple[str, ...] | None = ()


def _common(persona: Persona, world: str) -> dict[str, str]:
    return {"name": persona.name.split()[0], "companion": persona.companion.name, "world": world}


def intro(
    cfg: MessagesConfig, persona: Persona, target: str, label: str, progress: Progress, world: str = "Clone Earth"
) -> str:
    voice = cfg.voices[persona.companion.voice]
    return _fill(voice.intro[target], {**_common(persona, world), "stage": label, "days": str(progress.active_days)})


def new_cues(old: LookSummary, new: LookSummary) -> list[str]:
    """The cues of ``new`` that ``old`` did not show (none when ``old``'s are unknown)."""
    if old.cues is None or new.cues is None:
        return []
    seen = set(old.cues)
    out: list[str] = []
    for c in new.cues:
        if c not in seen and c not in out:
            out.append(c)
    return out


def evolution(
    cfg: MessagesConfig, persona: Persona, old: LookSummary, new: LookSummary, world: str = "Clone Earth"
) -> str:
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
    fresh = new_cues(old, new)
    if fresh and "achievements" in voice.changes:
        parts.append(_fill(voice.changes["achievements"], {"cues": "; ".join(fresh)}))
    return _fill(
        voice.evolution,
        {**_common(persona, world), "old": old.label, "new": new.label, "changes": " ".join(parts)},
    )


def look_of(style: StyleConfig, stage: str, label: str, cues: list[str] | None) -> LookSummary:
    look = style.stages[stage]
    return LookSummary(
        label=label,
        expression=look.mood or look.expression.split(",")[0],
        scene=look.story or look.scene,
        cues=None if cues is None else tuple(cues),
    )


def avatar_message(
    configs: ConfigSet,
    persona: Persona,
    target: str,
    stage: str,
    label: str,
    progress: Progress,
    cues: list[str],
    previous: AvatarRecord | None,
) -> str:
    """The message stored with a new avatar: the intro of its target, then for a stage reached
    from an earlier one, the story of what changed since that avatar."""
    style = configs.style
    text = intro(configs.messages, persona, target, label, progress, style.world)
    if previous is not None and target in configs.stages.names and previous.stage != stage:
        old = look_of(style, previous.stage, configs.label(previous.stage), previous.cues)
        new = look_of(style, stage, label, cues)
        text += " " + evolution(configs.messages, persona, old, new, style.world)
    return text


def selected(configs: ConfigSet, persona: Persona, record: AvatarRecord) -> str:
    """I-There's line when the user picks ``record`` to show: it opens a talk about that time."""
    style = configs.style
    look = look_of(style, record.stage, configs.label(record.stage), record.cues)
    voice = configs.messages.voices[persona.companion.voice]
    fields = {**_common(persona, style.world), "stage": configs.label(record.target)}
    return _fill(voice.selected, {**fields, "mood": look.expression, "scene": look.scene})

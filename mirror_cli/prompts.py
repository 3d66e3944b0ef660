"""Style templates -> prompts and render specs. Pure functions, no I/O.

Free text from users (discovered traits, descriptions) is bounded and cleaned here before it can
reach a prompt; anything that reads like an instruction is dropped, never passed on.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .config import Expression, StyleConfig
from .models import Appearance, Persona, Progress, RenderSpec

MAX_TRAIT_CHARS = 32
MAX_TRAIT_WORDS = 3
MAX_TRAITS = 4
MAX_DESCRIPTION_CHARS = 160

# Words that turn a descriptor into an instruction or a request for other content.
_INSTRUCTION_WORDS = re.compile(
    r"\b(ignore|disregard|forget|instead|instruction|instructions|prompt|system|assistant|override|"
    r"pretend|draw|render|generate|paint|show|depict|image|picture|photo|make|replace|"
    r"nude|naked|nsfw|sexy|sexual|gore|gory|blood|bloody|weapon|gun|guns|knife|kill|dead|drugs?|"
    r"logo|text|watermark|celebrity|famous|trump|biden|http|www)\b",
    re.IGNORECASE,
)
_ALLOWED_CHARS = re.compile(r"[^A-Za-z\u00C0-\u024F' \-]")

SKIN_WORDS = {
    "pale": "very fair",
    "light": "fair",
    "medium": "medium",
    "tan": "warm tan",
    "brown": "brown",
    "dark": "deep brown",
}
HAIR_COLOR_WORDS = {
    "black": "black",
    "darkBrown": "dark brown",
    "brown": "brown",
    "auburn": "auburn",
    "blonde": "blonde",
    "platinum": "platinum blonde",
    "red": "red",
    "grey": "grey",
}
HAIR_STYLE_WORDS = {
    "bigHair": "big voluminous hair",
    "bob": "hair in a bob cut",
    "bun": "hair in a bun",
    "curly": "curly hair",
    "curvy": "long wavy hair",
    "dreads": "dreadlocks",
    "dreads01": "short dreadlocks",
    "dreads02": "medium-length dreadlocks",
    "frida": "braided hair with flowers",
    "frizzle": "frizzy hair",
    "fro": "afro hair",
    "froBand": "afro hair with a headband",
    "hijab": "a hijab",
    "longButNotTooLong": "shoulder-length hair",
    "miaWallace": "a sleek bob with bangs",
    "shaggy": "shaggy hair",
    "shaggyMullet": "a shaggy mullet",
    "shavedSides": "hair with shaved sides",
    "shortCurly": "short curly hair",
    "shortFlat": "short neat hair",
    "shortRound": "short rounded hair",
    "shortWaved": "short wavy hair",
    "sides": "a balding crown with hair at the sides",
    "straight01": "long straight hair",
    "straight02": "long straight hair",
    "straightAndStrand": "long straight hair with a loose strand",
    "theCaesar": "a short caesar cut",
    "theCaesarAndSidePart": "a caesar cut with a side part",
    "turban": "a turban",
}
GLASSES_WORDS = {
    "none": "",
    "prescription01": "thin-framed glasses",
    "prescription02": "thin-framed glasses",
    "round": "round glasses",
    "wayfarers": "rectangular glasses",
}
FACIAL_HAIR_WORDS = {
    "none": "",
    "beardLight": "a light beard",
    "beardMedium": "a medium beard",
    "beardMajestic": "a full beard",
    "moustacheFancy": "a curled moustache",
    "moustacheMagnum": "a thick moustache",
}


def clean_free_text(text: str, max_chars: int = MAX_TRAIT_CHARS, max_words: int = MAX_TRAIT_WORDS) -> str | None:
    """Return a short, harmless descriptor, or None if the text cannot be used safely."""
    norm = unicodedata.normalize("NFKC", text)
    norm = "".join(ch for ch in norm if unicodedata.category(ch)[0] != "C")
    if _INSTRUCTION_WORDS.search(norm):
        return None
    norm = _ALLOWED_CHARS.sub(" ", norm)
    norm = re.sub(r"\s+", " ", norm).strip(" -'")
    if not norm or len(norm) > max_chars or len(norm.split()) > max_words:
        return None
    return norm.lower()


def clean_description(text: str) -> str | None:
    """Descriptions are longer: keep them only if they stay descriptive."""
    norm = unicodedata.normalize("NFKC", text)
    if _INSTRUCTION_WORDS.search(norm):
        return None
    norm = re.sub(r"[^A-Za-z0-9\u00C0-\u024F,' \-]", " ", norm)
    norm = re.sub(r"\s+", " ", norm).strip()
    return norm[:MAX_DESCRIPTION_CHARS] or None


def clean_traits(traits: list[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped) after cleaning; at most MAX_TRAITS kept, order preserved, no duplicates."""
    kept: list[str] = []
    dropped: list[str] = []
    for raw in traits:
        cleaned = clean_free_text(raw)
        if cleaned is None:
            dropped.append(raw)
        elif cleaned not in kept and len(kept) < MAX_TRAITS:
            kept.append(cleaned)
    return kept, dropped


def describe_appearance(a: Appearance, older: bool = False) -> str:
    hair_color = "grey-streaked " + HAIR_COLOR_WORDS[a.hair_color] if older else HAIR_COLOR_WORDS[a.hair_color]
    style = HAIR_STYLE_WORDS[a.hair_style]
    if a.hair_style in ("hijab", "turban"):
        hair = f"wearing {style}"
    elif style.startswith("a "):
        hair = f"{style} in {hair_color}"
    else:
        hair = f"{hair_color} {style}"
    parts = [f"{SKIN_WORDS[a.skin]} skin", hair]
    eye = clean_free_text(a.eye_color, max_chars=20, max_words=3)
    if eye:
        parts.append(f"{eye} eyes")
    for extra in (GLASSES_WORDS[a.glasses], FACIAL_HAIR_WORDS[a.facial_hair]):
        if extra:
            parts.append(extra)
    return ", ".join(parts)


@dataclass
class PromptParts:
    prompt: str
    spec: RenderSpec
    dropped: list[str] = field(default_factory=list)
    cues: list[str] = field(default_factory=list)


def environment(style: StyleConfig, progress: Progress) -> tuple[list[str], list[str], list[str]]:
    """(prompt fragments, props, achievement cue fragments) for the user's progress."""
    fragments: list[str] = []
    props: list[str] = []
    for rule in style.environment:
        w = rule.when
        ok = (
            (w.active_days_at_least is None or progress.active_days >= w.active_days_at_least)
            and (w.goals_completed_at_least is None or progress.goals_completed >= w.goals_completed_at_least)
            and (w.major_achievement is None or bool(progress.major_achievement) == w.major_achievement)
            and (w.trait_count_at_least is None or len(progress.discovered_traits) >= w.trait_count_at_least)
        )
        if ok:
            fragments.append(rule.prompt)
            props.extend(rule.props)
    cues: list[str] = []
    for area in progress.achievement_areas:
        cue = style.achievement_cues.get(area.strip().lower())
        if cue and cue.prompt not in cues:
            cues.append(cue.prompt)
            props.append(cue.prop)
    return fragments, props, cues


def build(
    style: StyleConfig,
    persona: Persona,
    progress: Progress,
    target: str,
    stage: str,
    stage_label: str,
    *,
    edit: bool = False,
    safe: bool = False,
    reinforce: bool = False,
) -> PromptParts:
    """The prompt and the render spec for one avatar.

    ``target`` is a stage or a trilogy kind; ``stage`` is the stage whose look is used.
    ``safe`` drops every free-text element (used after a moderation block).
    """
    trilogy = style.trilogy.get(target)
    look = style.stages[trilogy.stage if trilogy and trilogy.stage else stage]
    older = bool(trilogy and trilogy.older)
    face: Expression = trilogy.face if trilogy and trilogy.face else look.face

    env_fragments, env_props, cues = environment(style, progress)
    traits, dropped = clean_traits([*persona.personality, *progress.discovered_traits])
    description = clean_description(persona.appearance.description) if persona.appearance.description else None
    if persona.appearance.description and description is None:
        dropped.append(persona.appearance.description)

    lines = []
    if edit:
        lines.append(style.identity_prompt.strip())
    lines.append(style.base_prompt.strip())
    if safe:
        lines.append(style.safe_prompt.strip())
        lines.append(f"Subject: a person with {describe_appearance(persona.appearance, older)}.")
    else:
        subject = describe_appearance(persona.appearance, older)
        lines.append(f"Subject: a person with {subject}." + (f" ({description})" if description else ""))
        if traits:
            lines.append(f"Personality to convey through body language: {', '.join(traits)}.")
    if trilogy:
        lines.append(f"Portrait: {trilogy.prompt.strip()}.")
    lines.append(f"Stage: {stage_label}.")
    lines.append(f"Expression: {look.expression if not (trilogy and trilogy.face) else _face_words(face)}.")
    lines.append(f"Posture: {look.posture}.")
    lines.append(f"Workspace: {look.scene}.")
    if not safe:
        if env_fragments:
            lines.append("Progress details: " + "; ".join(env_fragments) + ".")
        if cues:
            lines.append("Achievement cues: " + "; ".join(cues) + ".")
    if reinforce:
        lines.append(style.reinforce_prompt.strip())

    props: list[str] = []
    for p in [*look.props, *(trilogy.props if trilogy else []), *([] if safe else env_props)]:
        if p not in props:
            props.append(p)
    spec = RenderSpec(
        target=target,
        stage=trilogy.stage if trilogy and trilogy.stage else stage,
        appearance=persona.appearance,
        expression={"eyes": face.eyes, "eyebrows": face.eyebrows, "mouth": face.mouth},
        props=props,
        older=older,
        seed=persona.id,
    )
    # a safe prompt draws no cues, so the picture shows none
    return PromptParts(prompt="\n".join(lines), spec=spec, dropped=dropped, cues=[] if safe else cues)


def _face_words(face: Expression) -> str:
    words = {
        "default": "relaxed",
        "happy": "smiling eyes",
        "squint": "focused eyes",
        "closed": "softly closed eyes",
        "openCurious": "wide, curious eyes",
        "openFocused": "focused eyes",
        "openBright": "bright open eyes",
        "openHappy": "smiling open eyes",
        "openWarm": "warm, calm eyes",
        "openRadiant": "radiant, sparkling eyes",
        "smile": "a warm smile",
        "twinkle": "a calm smile",
        "serious": "a neutral mouth",
        "raisedExcitedNatural": "lifted brows",
        "defaultNatural": "natural brows",
        "upDownNatural": "one raised brow",
    }
    return ", ".join(words.get(v, v) for v in (face.eyes, face.eyebrows, face.mouth))

"""I-There's evolution story from the real avatars: cues stored with each avatar, only what is new
relative to the previous avatar named, Clone Earth framing. Golden texts per voice and stage pair
(regenerate on purpose with UPDATE_GOLDEN=1), a property test over every stage pair, and the story
of a real timeline."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

import pytest
from conftest import CONFIGS, ROOT, avatar_record
from hypothesis import given, settings
from hypothesis import strategies as st

from mirror_cli import messages
from mirror_cli.config import ConfigSet, example_personas
from mirror_cli.models import AvatarRecord, Progress
from mirror_cli.prompts import environment
from mirror_cli.stages import STAGE_ORDER

GOLDEN = ROOT / "tests" / "golden"
VOICES = ["warm", "playful", "wise"]
PAIRS = list(itertools.combinations(STAGE_ORDER, 2))
# The areas a user's progress shows at each stage of the golden story: month -> quarter keeps
# the running shoes and the journal (not new) and adds the books.
AREAS = {
    "newReflection": [],
    "firstWeek": ["writing"],
    "twoWeeks": ["writing"],
    "month": ["writing", "fitness"],
    "quarter": ["writing", "fitness", "reading"],
    "halfYear": ["writing", "fitness", "reading"],
}
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cfg() -> ConfigSet:
    return ConfigSet(CONFIGS)


def _persona(voice: str):
    p = example_personas()["demo"]
    return p.model_copy(update={"companion": p.companion.model_copy(update={"voice": voice})})


def _progress(cfg: ConfigSet, stage: str) -> Progress:
    return Progress(active_days=cfg.stages.get(stage).from_day, achievement_areas=AREAS[stage])


def _record(stage: str, cues: list[str] | None) -> AvatarRecord:
    return avatar_record("demo", f"a-{stage}", stage, image_path=f"avatars/demo/{stage}.webp", cues=cues)


def _story(cfg: ConfigSet, voice: str, old: str, new: str) -> str:
    persona = _persona(voice)
    old_cues = environment(cfg.style, _progress(cfg, old))[2]
    new_progress = _progress(cfg, new)
    new_cues = environment(cfg.style, new_progress)[2]
    return messages.avatar_message(
        cfg, persona, new, new, cfg.label(new), new_progress, new_cues, _record(old, old_cues)
    )


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_story_matches_golden(cfg, voice, old, new):
    path = GOLDEN / f"story-{voice}.txt"
    line = f"{old} -> {new}: {_story(cfg, voice, old, new)}"
    if os.environ.get("UPDATE_GOLDEN"):
        lines = dict(ln.split(": ", 1) for ln in path.read_text().splitlines()) if path.exists() else {}
        lines[f"{old} -> {new}"] = line.split(": ", 1)[1]
        order = [f"{a} -> {b}" for a, b in PAIRS]
        path.write_text("".join(f"{k}: {lines[k]}\n" for k in order if k in lines))
    golden = {ln.split(": ", 1)[0]: ln for ln in path.read_text().splitlines()}
    assert line == golden[f"{old} -> {new}"]


def test_month_to_quarter_names_only_the_books(cfg):
    text = _story(cfg, "warm", "month", "quarter")
    assert "a stack of well-read books" in text
    assert "running shoes" not in text and "journal" not in text
    assert "Clone Earth" in text


_CFG = ConfigSet(CONFIGS)
CUES = [c.prompt for c in _CFG.style.achievement_cues.values()]


@settings(max_examples=300, deadline=None)
@given(
    voice=st.sampled_from(VOICES),
    pair=st.sampled_from([*PAIRS, *((b, a) for a, b in PAIRS)]),
    old=st.one_of(st.none(), st.lists(st.sampled_from(CUES), unique=True)),
    new=st.lists(st.sampled_from(CUES), unique=True),
)
def test_no_message_calls_a_cue_new_that_the_previous_avatar_had(voice, pair, old, new):
    cfg = _CFG
    a, b = pair
    text = messages.avatar_message(cfg, _persona(voice), b, b, cfg.label(b), _progress(cfg, b), new, _record(a, old))
    for cue in old or []:
        assert cue not in text, (cue, text)
    if old is None:  # the previous avatar's cues are unknown: none is called new
        assert not any(cue in text for cue in new), text
    else:
        for cue in new:
            assert (cue in text) == (cue not in old), (cue, text)
    assert cfg.label(a) in text and cfg.label(b) in text


def test_cues_are_stored_with_each_avatar_and_the_timeline_story_is_true(make_core):
    clock = {"t": NOW}
    core = make_core(now=lambda: clock["t"])
    areas = {30: ["writing", "fitness"], 90: ["writing", "fitness"], 180: ["writing", "fitness", "music"]}
    for day in (0, 30, 90, 180):
        clock["t"] = NOW + timedelta(days=day)
        core.set_progress("maya", Progress(active_days=day, achievement_areas=areas.get(day, [])))
        core.evolve("maya")
    records = {r.target: r for r in core.store.list_avatars("maya")}
    shoes, journal, guitar = (core.configs.style.achievement_cues[k].prompt for k in ("fitness", "writing", "music"))
    assert records["newReflection"].cues == []
    assert records["month"].cues == [journal, shoes] and records["quarter"].cues == [journal, shoes]
    quarter = records["quarter"].message
    assert "One Month -> Quarter" in quarter or "One Month to Quarter" in quarter
    assert shoes not in quarter and journal not in quarter and "New details" not in quarter
    half = records["halfYear"].message
    assert guitar in half and shoes not in half and journal not in half
    assert "Clone Earth" in half and "Clone Earth" in records["newReflection"].message


def test_a_record_from_before_cues_were_stored_gets_no_cue_called_new(cfg):
    text = messages.avatar_message(
        cfg,
        _persona("warm"),
        "quarter",
        "quarter",
        cfg.label("quarter"),
        _progress(cfg, "quarter"),
        environment(cfg.style, _progress(cfg, "quarter"))[2],
        _record("month", None),
    )
    assert "New details" not in text and "books" not in text and "Your expression has grown" in text


def test_the_world_is_narrative_only_never_in_a_prompt(cfg):
    from mirror_cli import prompts

    p = example_personas()["maya"]
    parts = prompts.build(cfg.style, p, p.progress, "month", "month", cfg.label("month"))
    assert cfg.style.world == "Clone Earth" and "Clone Earth" not in parts.prompt

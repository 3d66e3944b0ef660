"""Evolution: one avatar per stage crossed, never more; edits carry the anchor and the previous stage."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.models import Progress
from mirror_cli.stages import STAGE_ORDER


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def run_timeline(core, clock, uid="maya", days=200):
    generated = []
    for day in range(days + 1):
        clock.t = datetime(2026, 6, 1, 9, 0, tzinfo=UTC) + timedelta(days=day)
        core.set_progress(uid, Progress(active_days=day, goals_completed=day // 20))
        report = core.evolve(uid)
        generated += [(day, o.target) for o in report.outcomes if o.status == "generated"]
    return generated


EXPECTED = [
    (0, "newReflection"),
    (7, "firstWeek"),
    (14, "twoWeeks"),
    (30, "month"),
    (90, "quarter"),
    (180, "halfYear"),
]


def test_timeline_local_provider(make_core):
    clock = Clock()
    core = make_core(now=clock)
    assert run_timeline(core, clock) == EXPECTED
    assert [r.target for r in core.store.list_avatars("maya")] == list(STAGE_ORDER)
    again = core.evolve("maya")
    assert again.outcomes == [] and len(core.store.list_avatars("maya")) == 6
    messages = {r.target: r.message for r in core.store.list_avatars("maya")}
    assert "One Month -> Quarter" in messages["quarter"] and "framed certificate" in messages["quarter"]


def test_timeline_openai_provider(make_core, openai_env, fast_configs):
    clock = Clock()
    core = make_core(now=clock, provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    assert run_timeline(core, clock) == EXPECTED
    assert len(openai_env.ledger) == 6  # one paid image per stage crossed, no more
    assert [r["path"] for r in openai_env.requests] == ["/v1/images/generations"] + ["/v1/images/edits"] * 5
    records = core.store.list_avatars("maya")
    sha = {r.target: hashlib.sha256(core.store.read_image(r.image_path)).hexdigest() for r in records}
    for i, req in enumerate(openai_env.requests[1:], start=1):
        refs = [r["sha256"] for r in req["references"]]
        assert refs[0] == sha["newReflection"]  # the identity anchor, every time
        if i >= 2:
            assert refs == [sha["newReflection"], sha[STAGE_ORDER[i - 1]]]  # + the previous stage
    paid = sum(e.cost_usd for e in core.store.events() if e.kind == "generated")
    assert paid == pytest.approx(sum(r.cost_usd for r in records))
    # re-running the whole timeline buys nothing
    before = len(openai_env.requests)
    assert run_timeline(core, clock) == []
    assert len(openai_env.requests) == before


def test_user_without_anchor_gets_one_first(make_core):
    core = make_core()
    report = core.evolve("amira")  # 200 active days, no avatar yet
    assert [o.target for o in report.outcomes] == ["newReflection", "halfYear"]


def test_due_selects_only_users_who_crossed_a_milestone(make_core):
    core = make_core()
    core.generate(None, "newReflection")
    core.set_progress("kenji", Progress(active_days=12))  # firstWeek reached, not yet made
    core.set_progress("sofia", Progress(active_days=3))  # still newReflection
    report = core.evolve(None, due=True, any_hour=True)
    by_user = {o.user_id: o.target for o in report.outcomes}
    assert by_user["kenji"] == "firstWeek" and "sofia" not in by_user
    assert core.evolve(None, due=True, any_hour=True).outcomes == []


def test_to_forces_a_stage_and_dry_run_estimates(make_core, openai_env, fast_configs):
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    plan = core.evolve("leo", to="quarter", dry_run=True)
    assert [(o.target, o.status) for o in plan.outcomes] == [
        ("newReflection", "planned"),
        ("quarter", "planned"),
    ]
    assert plan.summary()["estimate_usd"] == pytest.approx(2 * (0.053 + 450 * 5e-6), rel=1e-6)
    assert openai_env.requests == []


def test_cli_evolve_due_json(data_dir):
    r = CliRunner().invoke(app, ["evolve", "--due", "--any-hour", "--json", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    r2 = CliRunner().invoke(app, ["evolve", "--json", "--data-dir", str(data_dir)])
    assert r2.exit_code == 2 and "--due" in r2.stdout

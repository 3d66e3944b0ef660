"""Paying per milestone, not per call: a stage a user already has is served as it is whatever
their metrics say now; a second paid image of it takes an explicit, limited regenerate.

What was paid is read from the loopback OpenAI server's own request log and ledger."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from conftest import make_config_dir

from mirror_cli.errors import UsageError
from mirror_cli.models import Progress
from mirror_cli.planner import look_key


def _images(server: Any) -> int:
    return len([r for r in server.requests if "images" in r.get("path", "")])


@pytest.fixture
def paid_core(make_core, openai_env, tmp_path):
    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000, "regenerations_per_target": 1})

    def make(**flags: Any) -> Any:
        return make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, **flags)

    return make


def test_same_stage_with_new_metrics_pays_nothing(paid_core, openai_env):
    core = paid_core()
    first = core.generate(["demo"], "firstWeek").outcomes[0]
    assert first.status == "generated" and first.cost_usd > 0
    assert _images(openai_env) == 1 and len(openai_env.ledger) == 1
    # the app sends fresh metrics on every call: still within firstWeek, new achievement and areas
    for n, progress in enumerate(
        [
            Progress(active_days=8, goals_completed=3, major_achievement="Ran a 10k", achievement_areas=["fitness"]),
            Progress(active_days=12, goals_completed=9, discovered_traits=["brave", "patient"]),
        ]
    ):
        core.set_progress("demo", progress)
        again = core.generate(["demo"], "firstWeek").outcomes[0]
        assert again.status == "cached", (n, again.reason)
        assert again.cost_usd == 0 and again.record is not None and again.record.id == first.record.id
    assert _images(openai_env) == 1 and len(openai_env.ledger) == 1
    # the progress itself was updated (it may make a later stage due), and that stage is paid once
    assert core.persona("demo").progress.active_days == 12
    later = core.generate(["demo"], "twoWeeks").outcomes[0]
    assert later.status == "generated" and _images(openai_env) == 2


def test_the_look_decides_the_key_not_the_progress(paid_core):
    core = paid_core()
    planner = core.planner()
    demo = core.persona("demo")
    job = planner.plan(demo, demo.progress, "month")
    moved = planner.plan(demo, Progress(active_days=40, goals_completed=30, major_achievement="x"), "month")
    assert moved.look_key == job.look_key and moved.request_key != job.request_key
    glasses = demo.model_copy(update={"appearance": demo.appearance.model_copy(update={"glasses": "none"})})
    assert planner.plan(glasses, demo.progress, "month").look_key != job.look_key
    assert planner.plan(demo, demo.progress, "quarter").look_key != job.look_key
    style = f"{planner.configs.style.name}@{int(planner.configs.style.version) + 1}"
    bumped = look_key(demo, "month", "month", "openai", planner.entry, "r", style, job.request, None)
    same_style = f"{planner.configs.style.name}@{planner.configs.style.version}"
    assert bumped != look_key(demo, "month", "month", "openai", planner.entry, "r", same_style, job.request, None)


def test_a_new_appearance_is_a_new_look_and_is_paid(paid_core, openai_env):
    core = paid_core()
    core.generate(["kenji"], "month")
    kenji = core.persona("kenji")
    core.import_users(
        [kenji.model_copy(update={"appearance": kenji.appearance.model_copy(update={"glasses": "none"})})]
    )
    assert core.generate(["kenji"], "month").outcomes[0].status == "generated"
    assert _images(openai_env) == 2


def test_regenerate_is_explicit_limited_and_then_served(paid_core, openai_env):
    core = paid_core()
    with pytest.raises(UsageError, match="nothing to regenerate"):
        core.generate(["demo"], "month", regenerate=True)
    assert _images(openai_env) == 0
    first = core.generate(["demo"], "month").outcomes[0]
    second = core.generate(["demo"], "month", regenerate=True).outcomes[0]
    assert second.status == "generated" and second.record.id != first.record.id
    assert second.request_key != first.request_key and _images(openai_env) == 2
    # the newest image of the stage is the one served from now on, at cost 0
    served = core.generate(["demo"], "month").outcomes[0]
    assert served.status == "cached" and served.record.id == second.record.id
    # regenerations_per_target: 1 in this test's limits
    with pytest.raises(UsageError, match="regenerations_per_target"):
        core.generate(["demo"], "month", regenerate=True)
    with pytest.raises(UsageError, match="--all"):
        core.generate(None, "month", regenerate=True)
    assert _images(openai_env) == 2 and len(openai_env.ledger) == 2


def test_a_record_made_before_looks_were_kept_stays_the_stages_avatar(paid_core, openai_env, data_dir):
    core = paid_core()
    first = core.generate(["demo"], "month").outcomes[0].record
    # the record as an earlier version stored it: no look key
    legacy = first.model_dump_json(exclude={"look_key"})
    with sqlite3.connect(data_dir / "mirror.db") as db:
        assert db.execute("UPDATE avatars SET record = ? WHERE id = ?", (legacy, first.id)).rowcount == 1
    assert core.store.get_avatar("demo", first.id).look_key is None
    core.set_progress("demo", Progress(active_days=45, goals_completed=20, achievement_areas=["career"]))
    again = core.generate(["demo"], "month").outcomes[0]
    assert again.status == "cached" and again.record.id == first.id and _images(openai_env) == 1


def test_dry_run_reports_an_existing_stage_as_cached(paid_core, openai_env):
    core = paid_core()
    core.generate(["demo"], "month")
    core.set_progress("demo", Progress(active_days=50, goals_completed=21))
    planned = core.generate(["demo"], "month", dry_run=True).outcomes[0]
    assert planned.status == "cached" and planned.estimate_usd == 0


def test_two_first_taps_with_other_metrics_on_two_instances_pay_once(make_core, openai_env, tmp_path):
    """Claims hold the look, not the request: instance B plans the same stage from other metrics
    (another prompt, another request key) while A's request is in flight, waits for A, and is
    answered with A's avatar. Each instance is a core of its own on one store."""
    import threading

    retry = {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05, "request_timeout_s": 60}
    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000, "retry": retry})
    a, b = (make_core(provider="openai", base_url=openai_env.url, config_dir=cfg) for _ in range(2))
    a.set_progress("demo", Progress(active_days=8, goals_completed=2, major_achievement="Ran a 10k"))
    openai_env.hold()
    outcomes: dict[str, Any] = {}

    def run(name: str, core: Any) -> None:
        outcomes[name] = core.generate(["demo"], "firstWeek").outcomes[0]

    first = threading.Thread(target=run, args=("a", a))
    first.start()
    openai_env.wait_for_requests(1)  # A's request is at the provider, its answer held
    b.set_progress("demo", Progress(active_days=9, goals_completed=5, discovered_traits=["brave", "patient"]))
    second = threading.Thread(target=run, args=("b", b))
    second.start()
    second.join(timeout=2)  # B is waiting for A (on the look's claim), not buying
    assert second.is_alive() and _images(openai_env) == 1
    openai_env.release()
    first.join(timeout=120)
    second.join(timeout=120)
    assert outcomes["a"].status == "generated" and outcomes["b"].status == "cached", outcomes["b"].reason
    assert outcomes["a"].request_key != outcomes["b"].request_key  # other metrics, other prompt
    assert outcomes["b"].record.id == outcomes["a"].record.id
    assert _images(openai_env) == 1 and len(openai_env.ledger) == 1

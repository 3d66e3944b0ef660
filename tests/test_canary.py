"""Canary before a model change: a fixed sample of real users re-rendered with the candidate,
scored with the same-face score and the gate, a side-by-side sheet; the nightly run refuses a
change whose canary is missing or drifts, with an override. Real store, the local renderer and
the loopback OpenAI server (the candidate model)."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from mirror_cli import identity
from mirror_cli.canary import fingerprint, nightly_guard, run_canary, sample
from mirror_cli.cli.app import app
from mirror_cli.config import example_personas
from mirror_cli.errors import ConfigError
from mirror_cli.models import Progress

HAVE_EXTRA, WHY = identity.available()
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason=f"identity extra not installed ({WHY}); make dev installs it")
USERS = ["maya", "kenji", "sofia"]


@pytest.fixture
def baseline(make_core):
    """Three users with a month avatar from the local renderer, and a first nightly run that
    recorded what it used."""
    core = make_core(examples=False)
    people = example_personas()
    core.import_users([people[u].model_copy(update={"progress": Progress(active_days=30)}) for u in USERS])
    for uid in USERS:
        core.evolve(uid)
    core.evolve(None, due=True, any_hour=True)
    return core


def _candidate(make_core, openai_env, fast_configs):
    return make_core(
        examples=False, provider="openai", model="gpt-image-1.5", base_url=openai_env.url, config_dir=fast_configs
    )


def test_the_sample_is_fixed_and_only_users_with_a_stage(baseline, make_core):
    picked = [(p.id, r.target) for p, r in sample(baseline, 10)]
    assert sorted(picked) == sorted((u, "month") for u in USERS)
    assert [p.id for p, _ in sample(make_core(examples=False), 10)] == [u for u, _ in picked]
    assert len(sample(baseline, 2)) == 2


@needs_extra
def test_an_identical_change_passes_without_rendering(baseline, make_core):
    same = make_core(examples=False)
    result = run_canary(same, size=8)
    assert result.passed and result.median_drift == 0.0 and all(r.reused for r in result.rows)
    assert len(result.rows) == 3 and result.paid_usd == 0
    # the nightly run goes ahead: nothing changed
    assert nightly_guard(same)["key"] == fingerprint(baseline)["key"]


@needs_extra
def test_a_drifting_model_change_is_blocked_until_overridden(baseline, make_core, openai_env, fast_configs, data_dir):
    candidate = _candidate(make_core, openai_env, fast_configs)
    # no canary yet: the nightly run refuses, naming the change and the command to run
    with pytest.raises(ConfigError) as err:
        candidate.evolve(None, due=True, any_hour=True)
    assert "local/local" in err.value.message and "gpt-image-1.5" in err.value.message
    assert "mirror canary --model gpt-image-1.5" in err.value.hint and "--override-canary" in err.value.hint
    assert len(openai_env.ledger) == 0
    # the canary: every sampled face drifts (the candidate draws other people)
    res = CliRunner().invoke(
        app,
        ["canary", "--provider", "openai", "--model", "gpt-image-1.5", "--base-url", openai_env.url,
         "--config-dir", str(fast_configs), "--data-dir", str(data_dir), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    summary = out["summary"]
    assert summary["passed"] is False and summary["sampled"] == 3 and len(out["items"]) == 3
    assert summary["median_drift"] is None or summary["median_drift"] > summary["threshold"]
    assert len(openai_env.ledger) == 3 and summary["paid_usd"] > 0
    paid = [e for e in baseline.store.events() if e.user_id == "_canary"]
    assert len(paid) == 3 and sum(e.cost_usd for e in paid) == pytest.approx(summary["paid_usd"])
    # no user's timeline changed
    assert all(len(baseline.store.list_avatars(u)) == 2 for u in USERS)
    with pytest.raises(ConfigError) as err:
        candidate.evolve(None, due=True, any_hour=True)
    assert "median drift" in err.value.message and summary["sheet"] in err.value.hint
    # the override goes ahead and becomes the new baseline
    report = candidate.evolve(None, due=True, any_hour=True, override_canary=True)
    assert report.stopped is None
    assert nightly_guard(candidate)["model"] == "gpt-image-1.5"
    # and going back to the old settings is a change again
    with pytest.raises(ConfigError):
        make_core(examples=False).evolve(None, due=True, any_hour=True)


@needs_extra
def test_canary_sheet_for_the_docs(baseline, make_core, openai_env, fast_configs):
    candidate = _candidate(make_core, openai_env, fast_configs)
    out = ROOT / "docs" / "canary-sheet.png"
    result = run_canary(candidate, size=3, sheet=out)
    assert out.is_file() and out.stat().st_size > 50_000 and result.sheet == str(out)
    run = candidate.store.get_run(result.run_id)
    assert run.command == "canary" and run.params["passed"] is False and run.counts["sampled"] == 3


def test_bad_canary_input(make_core, data_dir):
    make_core()  # users, but no avatars yet
    res = CliRunner().invoke(app, ["canary", "--data-dir", str(data_dir)])
    assert res.exit_code == 2 and "evolve" in res.output
    res = CliRunner().invoke(app, ["canary", "--renderer-version", "0.0.1", "--data-dir", str(data_dir)])
    assert res.exit_code == 2 and "renderer here is" in res.output
    res = CliRunner().invoke(app, ["canary", "--sample", "0", "--data-dir", str(data_dir)])
    assert res.exit_code == 2

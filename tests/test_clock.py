"""The core's one clock: pinned in tests, shifted by --now / MIRROR_NOW, and the model
retirement logic on both sides of a shutdown date (never the calendar day the tests run on)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, PINNED_NOW
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.clock import PinnedClock, parse_instant, starting_at, today
from mirror_cli.config import ConfigSet
from mirror_cli.errors import ExitCode, RunStoppedError, UsageError
from mirror_cli.project import SETTINGS_TEMPLATE

SHUTDOWN = date(2027, 3, 1)


def at(day: date, hour: int = 12) -> PinnedClock:
    return PinnedClock(datetime.combine(day, time(hour), UTC))


@pytest.fixture
def retiring_configs(tmp_path: Path) -> Path:
    """The shipped configs with a model 'gpt-image-2' that shuts down on SHUTDOWN."""
    out = tmp_path / "configs"
    shutil.copytree(CONFIGS, out)
    path = out / "models.yaml"
    data = yaml.safe_load(path.read_text())
    data["models"]["gpt-image-2"]["shutdown_date"] = SHUTDOWN
    data["models"]["gpt-image-2"]["replacements"] = ["gpt-image-2.6-sunburst"]
    path.write_text(yaml.safe_dump(data))
    return out


def test_parse_instant_takes_offsets_and_refuses_naive_or_garbage():
    assert parse_instant("2026-03-29T01:30:00Z") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert parse_instant("2026-03-29T03:30:00+02:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    with pytest.raises(UsageError, match="no UTC offset"):
        parse_instant("2026-03-29T02:30:00")
    with pytest.raises(UsageError, match="not an ISO-8601 instant") as err:
        parse_instant("tomorrow")
    assert "--now" in err.value.hint


def test_a_shifted_clock_starts_at_the_instant_and_moves_on():
    base = PinnedClock(datetime(2030, 1, 1, tzinfo=UTC))
    clock = starting_at(datetime(2026, 3, 29, 1, 30, tzinfo=UTC), base)
    assert clock() == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    base.advance(minutes=5)
    assert clock() == datetime(2026, 3, 29, 1, 35, tzinfo=UTC)
    assert today(clock) == date(2026, 3, 29)


def test_the_core_reads_the_pinned_clock_not_the_machine(make_core):
    core = make_core(examples=False)
    assert abs(core.now() - PINNED_NOW) < timedelta(minutes=5)


@pytest.mark.parametrize(
    ("day", "status"),
    [
        (SHUTDOWN - timedelta(days=61), "ok"),
        (SHUTDOWN - timedelta(days=60), "warn"),
        (SHUTDOWN - timedelta(days=1), "warn"),
        (SHUTDOWN, "fail"),
        (SHUTDOWN + timedelta(days=200), "fail"),
    ],
)
def test_doctor_on_both_sides_of_a_shutdown(make_core, retiring_configs, day, status):
    core = make_core(examples=False, config_dir=retiring_configs, model="gpt-image-2", now=at(day))
    check = {c["check"]: c for c in core.doctor()}["model"]
    assert check["status"] == status
    if status != "ok":
        assert SHUTDOWN.isoformat() in (check["detail"] or "")


def test_a_run_on_a_shut_down_model_is_refused_before_any_request(make_core, retiring_configs, openai_env):
    ok = make_core(
        config_dir=retiring_configs,
        provider="openai",
        base_url=openai_env.url,
        model="gpt-image-2",
        now=at(SHUTDOWN - timedelta(days=1), 23),
    )
    ok.generate(["kenji"], "newReflection")
    assert len(openai_env.requests) == 1
    late = make_core(
        config_dir=retiring_configs,
        provider="openai",
        base_url=openai_env.url,
        model="gpt-image-2",
        now=at(SHUTDOWN, 0),
    )
    with pytest.raises(RunStoppedError, match=SHUTDOWN.isoformat()) as err:
        late.generate(["maya"], "newReflection")
    assert "gpt-image-2.6-sunburst" in err.value.hint
    assert len(openai_env.requests) == 1


def test_a_shut_down_default_only_warns_in_doctor(make_core, retiring_configs):
    """The shipped default may outlive its model: doctor warns (a run names its own model)."""
    core = make_core(examples=False, config_dir=retiring_configs, model="gpt-image-2.6-sunburst", now=at(SHUTDOWN))
    checks = {c["check"]: c for c in core.doctor()}
    assert checks["model"]["status"] == "ok"
    assert checks["default model"]["status"] == "warn"
    assert "gpt-image-2" in (checks["default model"]["detail"] or "")


def test_no_shipped_default_or_suggestion_names_a_shut_down_model():
    """As of the pinned clock: the models.yaml default, every style's model and the model that
    'mirror init' suggests are all current. (doctor warns about the real date; see above.)"""
    cfg = ConfigSet(CONFIGS, "daymi")
    named = {cfg.models.default}
    for style in (CONFIGS / "styles").glob("*.yaml"):
        model = (yaml.safe_load(style.read_text()) or {}).get("model")
        if model:
            named.add(model)
    suggested = re.findall(r"^# model: (\S+)", SETTINGS_TEMPLATE, re.M)
    assert suggested, "mirror init no longer suggests a model: update this test"
    named.update(suggested)
    for name in sorted(named):
        assert name in cfg.models.models, name
        assert cfg.models.models[name].lifecycle(PINNED_NOW.date()) != "shut_down", name


def test_cli_now_option_and_environment(tmp_path, retiring_configs):
    runner = CliRunner()
    base = ["doctor", "--json", "--config-dir", str(retiring_configs), "--data-dir", str(tmp_path / "d")]
    base += ["--model", "gpt-image-2", "--provider", "openai"]
    before = runner.invoke(app, [*base, "--now", f"{SHUTDOWN - timedelta(days=2)}T12:00:00Z"])
    after = runner.invoke(app, [*base, "--now", f"{SHUTDOWN}T00:00:01+00:00"])
    model = [{c["check"]: c for c in json.loads(r.stdout)["items"]}["model"]["status"] for r in (before, after)]
    assert model == ["warn", "fail"]
    bad = runner.invoke(app, ["usage", "--json", "--data-dir", str(tmp_path / "d"), "--now", "2027-03-01 02:30"])
    assert bad.exit_code == ExitCode.USAGE
    assert "--now" in bad.stdout and "UTC offset" in bad.stdout
    env = runner.invoke(app, base, env={"MIRROR_NOW": f"{SHUTDOWN}T08:00:00Z"})
    assert {c["check"]: c for c in json.loads(env.stdout)["items"]}["model"]["status"] == "fail"

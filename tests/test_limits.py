"""Cost control: per-user and system daily limits, monthly budget, --max-cost, concurrency."""

from __future__ import annotations

import pytest
from conftest import import_examples, make_config_dir, openai_flags
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import ExitCode


@pytest.fixture
def limited(make_core, openai_env, tmp_path):
    def factory(limits, **kw):
        cfg = make_config_dir(tmp_path, limits)
        return make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, **kw)

    return factory


def test_per_user_daily_limit_serves_latest_avatar(limited, openai_env):
    core = limited({"per_user_daily": 2})
    core.generate(["demo"], "newReflection")
    core.generate(["demo"], "firstWeek")
    report = core.generate(["demo"], "month")
    out = report.outcomes[0]
    assert out.status == "degraded" and "per_user_daily" in out.reason
    assert out.record.target == "firstWeek"  # the latest existing avatar is served
    assert len(openai_env.ledger) == 2
    assert report.summary()["degraded"] == 1
    assert core.generate(["maya"], "month").count("generated") == 1  # other users are unaffected


def test_system_daily_limit_serves_fallback_to_new_users(limited, openai_env):
    core = limited({"system_daily": 2})
    report = core.generate(None, "newReflection")
    statuses = sorted(o.status for o in report.outcomes)
    assert statuses.count("generated") == 2 and statuses.count("fallback") == 4
    fb = [o for o in report.outcomes if o.status == "fallback"]
    assert all("system_daily" in o.reason and "fallback_assets" in o.served_path for o in fb)
    assert len(openai_env.ledger) == 2


def test_monthly_budget(limited, openai_env):
    core = limited({"monthly_budget_usd": 0.12})  # room for two estimates of ~0.055
    report = core.generate(None, "newReflection")
    assert report.count("generated") == 2 and report.degraded == 4
    assert all("monthly_budget" in o.reason for o in report.outcomes if o.status != "generated")


def test_max_cost_per_run_and_exit_code(openai_env, tmp_path, data_dir):
    cfg = make_config_dir(tmp_path)
    import_examples(data_dir)
    res = CliRunner().invoke(
        app,
        [
            "generate",
            "--all",
            "--stage",
            "newReflection",
            *openai_flags(openai_env.url, cfg, data_dir),
            "--max-cost",
            "0.06",
            "--concurrency",
            "1",
            "--json",
        ],
        env={"OPENAI_API_KEY": "sk-test-abcdefghijklmnop"},
    )
    assert res.exit_code == ExitCode.PARTIAL
    import json

    summary = json.loads(res.stdout)["summary"]
    assert summary["generated"] == 1 and summary["degraded"] == 5
    assert summary["cost_usd"] <= 0.06


@pytest.mark.parametrize("store_kind", ["local", "firebase"])
def test_concurrent_jobs_cannot_overshoot_the_budget(limited, openai_env, store_kind, request, monkeypatch):
    """Sixteen users at once against a budget for five: reservations, not after-the-fact checks.
    The answers are held until five requests are in flight together, so every reservation is
    made while the others' spend is still unsettled; exactly five images, on either store."""
    if store_kind == "firebase":
        request.getfixturevalue("firebase_env")
        monkeypatch.setenv("MIRROR_STORE", "firebase")
    openai_env.hold(until=5, timeout_s=30)
    core = limited({"monthly_budget_usd": 5 * 0.0553, "per_user_daily": 10, "system_daily": 100}, concurrency=16)
    from mirror_cli.models import Persona

    core.import_users([Persona(id=f"c{i:02d}", name="C") for i in range(16)])
    report = core.generate([f"c{i:02d}" for i in range(16)], "newReflection")
    assert report.count("generated") == 5, report.summary()
    assert openai_env.gate_timeouts == 0  # the five were in flight at once
    spent = sum(e.cost_usd for e in core.store.events() if e.kind == "generated")
    assert spent <= 5 * 0.0553 and len(openai_env.ledger) == len(openai_env.requests) == 5


def test_concurrent_processes_share_the_system_limit(limited, openai_env, tmp_path):
    """Two processes on one store (a sharded cron on one host) still respect system_daily."""
    import subprocess
    import sys

    core = limited({"system_daily": 3})
    from mirror_cli.models import Persona

    core.import_users([Persona(id=f"p{i}", name="P") for i in range(8)])
    cfg = core.settings.config_dir
    code = (
        "import sys; from mirror_cli.core import Mirror, Shard; from mirror_cli.settings import load_settings;"
        f"m=Mirror(load_settings({{'data_dir': r'{core.settings.data_dir}', 'config_dir': r'{cfg}',"
        f"'provider': 'openai', 'base_url': '{openai_env.url}'}}));"
        "r=m.generate(None, 'newReflection', shard=Shard(int(sys.argv[1]), 2)); print(r.count('generated'))"
    )
    env = {"OPENAI_API_KEY": "sk-test-abcdefghijklmnop", "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(i)], stdout=subprocess.PIPE, text=True, env=env)
        for i in range(2)
    ]
    made = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert sum(made) == 3 and len(openai_env.ledger) == 3

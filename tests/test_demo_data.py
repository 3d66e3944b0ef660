"""Demo data stays demo data: the example personas are users of a store only once imported
('mirror users import --examples'); a run against a store sees exactly that store's users."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.models import Persona, Progress

runner = CliRunner()


def test_examples_are_not_users_until_imported(make_core, store_kind):
    core = make_core(examples=False)
    assert list(core.user_ids()) == []
    assert sorted(core.import_examples()) == ["amira", "demo", "kenji", "leo", "maya", "sofia"]
    assert sorted(core.user_ids()) == ["amira", "demo", "kenji", "leo", "maya", "sofia"]


def test_production_evolve_due_plans_only_the_stores_users(make_core, data_dir, store_kind):
    """One real user, whose id happens to be 'demo': the nightly run plans their jobs only, with
    their own name and progress, not the example persona's."""
    core = make_core(examples=False)
    core.import_users([Persona(id="demo", name="Real Person", progress=Progress(active_days=40))])
    res = runner.invoke(
        app,
        ["evolve", "--due", "--any-hour", "--dry-run", "--provider", "openai", "--data-dir", str(data_dir), "--json"],
    )
    assert res.exit_code == 0, res.output  # a dry run estimates without an API key
    out = json.loads(res.stdout)
    assert {j["user"] for j in out["jobs"]} == {"demo"}
    assert [j["target"] for j in out["jobs"]] == ["newReflection", "month"]
    assert out["summary"]["planned"] == 2 and out["summary"]["estimate_usd"] > 0
    users = json.loads(runner.invoke(app, ["users", "list", "--data-dir", str(data_dir), "--json"]).stdout)
    assert users["items"] == [
        {
            "user": "demo",
            "name": "Real Person",
            "active_days": 40,
            "stage_reached": "month",
            "latest_avatar_stage": None,
            "timezone": "UTC (default)",
        }
    ]


def test_import_examples_through_the_cli(data_dir):
    res = runner.invoke(app, ["users", "import", "--examples", "--data-dir", str(data_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["summary"] == {"imported": 6, "examples": True} and "demo" in out["items"]
    nothing = runner.invoke(app, ["users", "import", "--data-dir", str(data_dir), "--json"])
    assert nothing.exit_code == 2 and "--examples" in json.loads(nothing.stdout)["hint"]

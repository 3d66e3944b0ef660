"""Every command once, the way a user runs it, on whatever versions of the dependencies are
installed: `make lowest` runs this module in a fresh venv holding the lowest versions
pyproject.toml allows (the lower bounds are true only while it passes), `make test` on the
current ones. Human output included: it is where typer and rich versions differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from mirror_cli.cli.app import app


def _commands(command: Any, path: list[str]) -> list[list[str]]:
    """Every command and group under the root, as the words that name it."""
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            found += _commands(sub, [*path, name])
    return found


COMMANDS = _commands(typer.main.get_command(app), [])
assert len(COMMANDS) > 15 and ["serve"] in COMMANDS and ["users", "import"] in COMMANDS


def run(*args: str, code: int | tuple[int, ...] = 0, env: dict[str, str] | None = None):
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", **(env or {})})
    codes = code if isinstance(code, tuple) else (code,)
    assert res.exit_code in codes, (args, res.output[-3000:], res.exception)
    return res


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "mirror")
def test_help(command):
    text = run(*command, "--help").stdout
    assert "Usage: mirror" in text and "--help" in text
    assert "<bool>" not in text


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIRROR_FALLBACK_DIR")
    run("init")
    run("users", "import", "--examples")
    return tmp_path


def test_the_offline_path_end_to_end(project):
    assert "1 generated" in run("generate", "--user", "demo", "--stage", "month").stdout
    out = json.loads(run("generate", "--user", "demo", "--stage", "month", "--json").stdout)
    assert out["jobs"][0]["status"] == "cached"
    assert "demo" in run("users", "list").stdout
    run("users", "progress", "--user", "demo", "--active-days", "95")
    dry = json.loads(run("evolve", "--due", "--any-hour", "--dry-run", "--json").stdout)
    assert "demo" in {j["user"] for j in dry["jobs"]}
    assert "dry run" in run("trilogy", "--user", "demo", "--dry-run").stdout
    assert "1 generated" in run("evolve", "--user", "demo").stdout
    run("gallery", "--user", "demo", "--out", "review")
    assert (project / "review" / "gallery-demo.html").is_file()
    assert "generations" in run("usage").stdout
    assert json.loads(run("usage", "--json").stdout)["summary"]["generations"] == 2
    assert "generate" in run("runs").stdout or json.loads(run("runs", "--json").stdout)["items"] == []
    run("purge-cache", "--dry-run")
    assert "dry run" in run("seed-fallbacks", "--only", "month", "--dry-run").stdout
    doctor = json.loads(run("doctor", "--json", code=(0, 3)).stdout)
    assert doctor["summary"]["checks"] >= 5 and doctor["summary"]["failed"] == 0, doctor["items"]
    assert "mirror doctor" in run("doctor").stdout


def test_openai_through_the_real_sdk(project, openai_env):
    flags = ["--provider", "openai", "--base-url", openai_env.url]
    res = run("generate", "--user", "demo", "--stage", "newReflection", *flags, "--json")
    job = json.loads(res.stdout)["jobs"][0]
    assert job["status"] == "generated" and job["cost_usd"] > 0
    assert len(openai_env.requests) == 1
    evolved = json.loads(run("generate", "--user", "demo", "--stage", "month", *flags, "--json").stdout)
    assert evolved["jobs"][0]["status"] == "generated"  # an images.edit with the first avatar
    human = run("generate", "--user", "demo", "--stage", "month", *flags).stdout
    assert "cached" in human
    photo = project / "me.jpg"
    Image.new("RGB", (640, 480), (200, 150, 120)).save(photo, exif=Image.Exif())
    run("users", "consent", "--user", "leo", "--photo", "--json")
    trilogy = json.loads(run("trilogy", "--user", "leo", "--photo", str(photo), *flags, "--json").stdout)
    assert [j["status"] for j in trilogy["jobs"]] == ["generated"] * 3


def test_a_bad_input_is_a_worded_error(project):
    res = run("generate", "--user", "no/such", "--stage", "month", code=2)
    assert "error:" in res.stderr and "fix:" in res.stderr


def test_the_firebase_store(project, firebase_env):
    run("users", "import", "--examples", "--store", "firebase")
    out = json.loads(run("generate", "--user", "demo", "--stage", "month", "--store", "firebase", "--json").stdout)
    assert out["jobs"][0]["status"] == "generated"
    assert "demo" in run("users", "list", "--store", "firebase").stdout

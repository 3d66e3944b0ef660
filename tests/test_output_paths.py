"""Fail before paying: every output path (--report, gallery and seed-fallbacks --out) is checked
before the first paid request; a report that cannot be written after the run still reaches stdout
as JSON, with the documented exit code (the run's own, or 2), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirror_cli.cli.app import app


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project with the example personas, nothing generated yet."""
    monkeypatch.chdir(tmp_path)
    assert run("init").exit_code == 0
    assert run("users", "import", "--examples").exit_code == 0
    return tmp_path


def paid(openai_env, *args: str):
    return run(*args, "--provider", "openai", "--base-url", openai_env.url)


@pytest.mark.parametrize("command", [["generate", "--user", "demo", "--stage", "month"], ["evolve", "--user", "demo"]])
def test_a_report_in_a_missing_folder_is_written_there(project, openai_env, command):
    report = project / "logs" / "mirror" / "2026-12-01.json"
    res = paid(openai_env, *command, "--report", str(report), "--json")
    assert res.exit_code == 0, res.output
    written = json.loads(report.read_text())
    assert written == json.loads(res.stdout)
    assert written["summary"]["generated"] == len(openai_env.requests) >= 1


@pytest.mark.parametrize(
    ("make_bad", "why"),
    [
        (lambda p: (p / "afile").write_text("x") and p / "afile" / "x.json", "is a file, not a folder"),
        (lambda p: (p / "adir").mkdir() or p / "adir", "is a folder, not a file"),
    ],
)
def test_a_report_path_that_cannot_be_written_is_refused_before_paying(project, openai_env, make_bad, why):
    report = make_bad(project)
    res = paid(openai_env, "generate", "--user", "demo", "--stage", "month", "--report", str(report), "--json")
    assert res.exit_code == 2, res.output
    out = json.loads(res.stdout)
    assert out["error"] == "UsageError" and why in out["message"] and "nothing was run" in out["message"]
    assert openai_env.requests == []  # nothing billed
    usage = json.loads(run("usage", "--json").stdout)["summary"]
    assert usage["generations"] == 0 and usage["cost_usd"] == 0


def test_a_refused_command_creates_no_report_folder(project):
    res = run("generate", "--user", "../x", "--stage", "month", "--report", str(project / "new" / "r.json"))
    assert res.exit_code == 2 and not (project / "new").exists()


@pytest.mark.parametrize("as_json", [True, False])
def test_a_report_that_fails_after_the_run_still_reaches_stdout(project, openai_env, as_json):
    """/dev/full accepts the open and fails the write (ENOSPC): a disk that filled up during the run."""
    res = paid(
        openai_env, "generate", "--user", "demo", "--stage", "month", "--report", "/dev/full", *(["--json"] * as_json)
    )
    assert res.exit_code == 2, res.output  # the run went well; the report did not
    assert res.exception is None or isinstance(res.exception, SystemExit)
    report = json.loads(res.stdout)
    assert report["jobs"][0]["status"] == "generated" and report["summary"]["generated"] == 1
    assert "could not be written to /dev/full" in res.stderr and "Traceback" not in res.output
    assert len(openai_env.requests) == 1


def test_gallery_and_seed_out_folders_are_checked_first(project):
    (project / "taken").write_text("a file")
    res = run("gallery", "--user", "demo", "--out", str(project / "taken"), "--json")
    assert res.exit_code == 2 and "is a file, not a folder" in json.loads(res.stdout)["message"]
    res = run("seed-fallbacks", "--only", "month", "--out", str(project / "taken" / "set"), "--json")
    assert res.exit_code == 2, res.output
    assert not list(project.glob("fallback_assets/**/*.webp"))
    res = run("gallery", "--user", "demo", "--out", str(project / "a" / "b"))
    assert res.exit_code == 0, res.output
    assert (project / "a" / "b" / "gallery-demo.html").is_file()

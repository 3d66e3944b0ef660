"""Shipped defaults live in the package and are only read; a user's project folder overrides them
(mirror init); the settings precedence is flags > MIRROR_* > mirror.yaml > project > package."""

from __future__ import annotations

import json
import os

import pytest
from conftest import ROOT, import_examples
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.core import Mirror
from mirror_cli.errors import UsageError
from mirror_cli.resources import (
    default_config_dir,
    examples_dir,
    firebase_files_dir,
    is_inside_package,
    shipped_fallback_dir,
)
from mirror_cli.settings import load_settings

runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [*args], env=env)


def test_shipped_data_is_inside_the_package():
    for folder in (default_config_dir(), shipped_fallback_dir(), examples_dir(), firebase_files_dir()):
        assert folder.is_dir() and is_inside_package(folder), folder
    assert (default_config_dir() / "stages.yaml").is_file()
    assert not (ROOT / "configs").exists() and not (ROOT / "fallback_assets").exists()


@pytest.mark.parametrize("name", ["firebase.json", "firestore.rules", "storage.rules", "firestore.indexes.json"])
def test_shipped_firebase_files_equal_the_ones_firebase_deploys(name):
    """The repository root keeps the files where Firebase tooling expects them; the package ships
    copies for 'mirror init'. Edit the root file, then copy it to mirror_cli/data/firebase/."""
    assert (firebase_files_dir() / name).read_bytes() == (ROOT / name).read_bytes()


def test_defaults_come_from_the_package_when_there_is_no_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIRROR_FALLBACK_DIR")
    s = load_settings()
    assert s.config_dir == default_config_dir()
    assert s.fallback_dir.resolve() == (tmp_path / "fallback_assets").resolve()
    assert s.data_dir.resolve() == (tmp_path / "mirror-data").resolve()


def test_init_then_the_project_overrides_the_package(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    res = cli("init", str(project), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["summary"]["written"] == len(out["items"]) >= 10
    assert (project / "configs" / "stages.yaml").read_bytes() == (default_config_dir() / "stages.yaml").read_bytes()
    assert (project / "firestore.rules").is_file()
    # Run from elsewhere, pointed at the project by MIRROR_SETTINGS: paths resolve against it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIRROR_FALLBACK_DIR")
    monkeypatch.setenv("MIRROR_SETTINGS", str(project / "mirror.yaml"))
    s = load_settings()
    assert s.config_dir == project / "configs" and s.data_dir == project / "mirror-data"
    assert s.fallback_dir == project / "fallback_assets"
    # mirror.yaml < MIRROR_* < flags
    (project / "mirror.yaml").write_text((project / "mirror.yaml").read_text() + "concurrency: 2\n")
    assert load_settings().concurrency == 2
    monkeypatch.setenv("MIRROR_CONCURRENCY", "3")
    assert load_settings().concurrency == 3
    assert load_settings({"concurrency": 4}).concurrency == 4
    # A second init keeps the user's edits.
    again = json.loads(cli("init", str(project), "--json").stdout)
    assert again["summary"]["written"] == 0 and "concurrency: 2" in (project / "mirror.yaml").read_text()


def test_project_folder_configs_are_found_from_the_current_folder(tmp_path, monkeypatch):
    cli("init", str(tmp_path / "p"))
    (tmp_path / "p" / "mirror.yaml").unlink()  # no settings file: the folder alone counts
    monkeypatch.chdir(tmp_path / "p")
    assert load_settings().config_dir.resolve() == (tmp_path / "p" / "configs").resolve()


def test_seed_fallbacks_writes_into_the_project_and_the_lookup_prefers_it(tmp_path, data_dir, monkeypatch):
    own = tmp_path / "fallback_assets"
    monkeypatch.setenv("MIRROR_FALLBACK_DIR", str(own))
    shipped_before = sorted(p.name for p in (shipped_fallback_dir() / "daymi" / "month").iterdir())
    res = cli("seed-fallbacks", "--only", "month", "--variants", "tan-bob", "--data-dir", str(data_dir), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["summary"]["rendered"] == 1 and [j["file"] for j in out["jobs"]] == ["month/tan-bob.webp"]
    assert (own / "daymi" / "month" / "tan-bob.webp").is_file()
    assert sorted(p.name for p in (shipped_fallback_dir() / "daymi" / "month").iterdir()) == shipped_before
    import_examples(data_dir)
    core = Mirror(load_settings({"data_dir": data_dir}))
    try:
        # Once approved, the user's set serves 'month' (its only variant), the shipped set every
        # other stage (approval states themselves: tests/test_approvals.py).
        from mirror_cli.review import ReviewDesk

        ReviewDesk(core).decide("fallback", "daymi/month/tan-bob", "approved", "designer")
        assert core.fallbacks.pick("month", core.persona("maya")) == own / "daymi" / "month" / "tan-bob.webp"
        assert core.fallbacks.pick("quarter", core.persona("maya")).is_relative_to(shipped_fallback_dir())
    finally:
        core.close()


def test_nothing_is_written_into_the_package_by_default(data_dir, monkeypatch):
    monkeypatch.setenv("MIRROR_FALLBACK_DIR", str(shipped_fallback_dir()))
    core = Mirror(load_settings({"data_dir": data_dir}))
    try:
        with pytest.raises(UsageError) as err:
            core.seed_fallbacks(only=["month"])
        assert "read-only" in err.value.message and "--out" in (err.value.hint or "")
    finally:
        core.close()
    res = cli("init", str(default_config_dir()), "--json")
    assert res.exit_code == 2 and "read-only" in json.loads(res.stdout)["message"]


def test_settings_file_is_bounded(tmp_path, monkeypatch):
    big = tmp_path / "mirror.yaml"
    big.write_text("# " + "x" * 70_000 + "\n")
    monkeypatch.setenv("MIRROR_SETTINGS", str(big))
    res = cli("doctor", "--json")
    assert res.exit_code == 3
    checks = json.loads(res.stdout)["items"]
    assert checks[0]["status"] == "fail" and "larger than" in checks[0]["detail"]
    assert os.environ["MIRROR_SETTINGS"] == str(big)

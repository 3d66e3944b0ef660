"""The release files: `make dist`'s build (wheel and sdist from an isolated environment) prints no
warning, PyPI's check passes, the metadata carries an SPDX licence and the card's seven packages
as core dependencies (extras only for serve and identity), and a hint naming an extra keeps its
brackets on a terminal."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from mirror_cli.cli.app import app

CARD = ["typer", "rich", "openai", "pillow", "firebase-admin", "pydantic", "pyyaml"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group(0).lower()


def test_the_cards_packages_are_core_dependencies():
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert set(CARD) <= core
    extras = PYPROJECT["project"]["optional-dependencies"]
    for name, reqs in extras.items():
        assert not {_name(r) for r in reqs} & set(CARD), f"[{name}] repeats a core dependency"
    # the extras of earlier instructions still install (empty), the optional features have theirs
    assert extras["openai"] == [] and extras["firebase"] == []
    assert extras["serve"] and extras["identity"]


def test_build_requirements_and_dependencies_are_bounded():
    for req in PYPROJECT["build-system"]["requires"]:
        assert ">=" in req and "<" in req.replace("<=", ""), req
    for req in PYPROJECT["project"]["dependencies"]:
        assert ">=" in req or "==" in req, req


@pytest.mark.install
def test_dist_builds_without_a_warning_and_passes_twine(tmp_path: Path):
    out = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-3000:]
    warnings = [ln for ln in log.splitlines() if re.search(r"warn|deprecat|would be ignored", ln, re.I)]
    assert warnings == [], "\n".join(warnings[:40])
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASSED" in check.stdout and "WARNING" not in check.stdout

    names = zipfile.ZipFile(wheel).namelist()
    tracked = subprocess.run(["git", "ls-files", "mirror_cli"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert set(tracked.stdout.split()) <= set(names)  # every source and data file, nothing left out
    meta = email.message_from_bytes(zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))))
    assert meta["License-Expression"] == "LicenseRef-Proprietary"
    required = {_name(r) for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert set(CARD) <= required
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"tests/conftest.py", "tests/openai_server.py", "mirror_cli/data/configs/stages.yaml"} <= in_sdist
    assert not any("__pycache__" in n or "node_modules" in n for n in in_sdist)


def test_a_hint_naming_an_extra_keeps_its_brackets_on_a_terminal(monkeypatch, tmp_path):
    """Rich would take '[serve]' for markup and print 'mirror-realm-avatars'."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the serve extra were not installed
    res = CliRunner().invoke(app, ["serve", "--firebase-project", "demo-x"], env={"COLUMNS": "200"})
    assert res.exit_code == 3, res.output
    assert "fix: pip install 'mirror-realm-avatars[serve]'" in res.stderr


def test_doctor_shows_the_identity_extra_with_its_brackets(tmp_path):
    script = (
        "import sys; sys.modules['dlib'] = None\n"  # as if the identity extra were not installed
        "from mirror_cli.cli.app import main\n"
        "sys.argv = ['mirror', 'doctor']\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "250", "MIRROR_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode in (0, 3), out.stderr[-3000:]
    assert "pip install 'mirror-realm-avatars[identity]'" in out.stdout, out.stdout[-3000:]

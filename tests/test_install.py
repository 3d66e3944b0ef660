"""The container recipe without Docker: the Dockerfile's two steps (docker/build-wheels.sh, then
docker/install.sh into a fresh virtual environment), then mirror run as an unprivileged user from
an empty folder. Nothing may be written inside the installed package."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.install

NOBODY = 65534
# The extras the Dockerfile installs by default.
DOCKER_EXTRAS = re.search(r"^ARG EXTRAS=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)


def test_dockerfile_runs_the_scripts_this_test_runs():
    text = (ROOT / "Dockerfile").read_text()
    runs = " ".join(re.findall(r"^RUN (.+?)(?<!\\)$", text.replace("\\\n", " "), re.M | re.S))
    assert 'build-wheels.sh /src /wheels "$EXTRAS"' in runs
    assert 'install.sh /wheels /opt/mirror "$EXTRAS"' in runs
    assert re.search(r"^USER 10001", text, re.M) and 'ENTRYPOINT ["mirror"]' in text
    assert DOCKER_EXTRAS and DOCKER_EXTRAS.group(1) == "serve"
    ignored = (ROOT / ".dockerignore").read_text()
    assert "!mirror_cli/" in ignored and "!docker/" in ignored


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path]]:
    """Wheels built from this checkout, installed into a fresh venv readable by everyone."""
    base = Path(tempfile.mkdtemp(prefix="mirror-install-"))
    base.chmod(0o755)
    wheels, venv = base / "wheels", base / "venv"
    env = {**os.environ, "PYTHON": sys.executable}
    # The same scripts as the Dockerfile, with the same extras.
    extras = DOCKER_EXTRAS.group(1) if DOCKER_EXTRAS else ""
    subprocess.run(["sh", str(ROOT / "docker/build-wheels.sh"), str(ROOT), str(wheels), extras], env=env, check=True)
    subprocess.run(["sh", str(ROOT / "docker/install.sh"), str(wheels), str(venv), extras], env=env, check=True)
    yield wheels, venv
    shutil.rmtree(base, ignore_errors=True)


def test_the_wheel_carries_the_package_data(installed):
    wheels, _ = installed
    (wheel,) = wheels.glob("mirror_realm_avatars-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "mirror_cli/data/configs/stages.yaml",
        "mirror_cli/data/configs/styles/daymi.yaml",
        "mirror_cli/data/examples/personas/demo.yaml",
        "mirror_cli/data/fallback_assets/daymi/manifest.json",
        "mirror_cli/data/fallback_assets/daymi/month/tan-bob.webp",
        "mirror_cli/data/firebase/firestore.rules",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "bench/", "docs/")) for n in names)


def test_installed_mirror_runs_as_nobody_from_an_empty_folder(installed):
    _, venv = installed
    site = next((venv / "lib").glob("python*/site-packages"))
    package = site / "mirror_cli"
    before = _tree_digest(site)
    work = Path(tempfile.mkdtemp(prefix="mirror-work-"))
    work.chmod(0o777)
    if os.geteuid() == 0:
        os.chown(work, NOBODY, NOBODY)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
    }
    exe = str(venv / "bin" / "mirror")

    def mirror(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [*_unprivileged(), exe, *args], cwd=work, env=env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0 or not check, (args, out.stdout[-2000:], out.stderr[-2000:])
        return out

    try:
        assert "generate" in mirror("--help").stdout
        mirror("init")
        assert (work / "mirror.yaml").is_file() and (work / "configs" / "stages.yaml").is_file()
        assert "imported 6 user(s)" in mirror("users", "import", "--examples").stdout
        assert "1 generated" in mirror("generate", "--user", "demo", "--stage", "month").stdout
        assert "dry run" in mirror("seed-fallbacks", "--only", "month", "--dry-run").stdout
        doctor = mirror("doctor").stdout
        assert "fail" not in doctor
        mirror("usage")
        if os.geteuid() == 0:
            assert {p.stat().st_uid for p in work.rglob("*")} == {NOBODY}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert _tree_digest(site) == before, "something was written inside site-packages"
    assert not list(package.rglob("__pycache__/*.pyc")) or all(
        str(p.relative_to(site)) in before for p in package.rglob("*.pyc")
    )

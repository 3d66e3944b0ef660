"""Every command in the README runs as written. The README's shell blocks are read, each `mirror`
line (also inside `docker run ... mirror ...` and the crontab) is run in README order against a
temporary project: as written when it spends nothing, with --dry-run when it would make images,
with --help when it needs what a test machine lacks or would not end (a server or a worker that
runs until stopped, a run id, Google credentials, a shell substitution). The install lines name
the wheel `make dist` builds and `python3`, never a package that is not published."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from mirror_cli.cli.app import app

README = (ROOT / "README.md").read_text(encoding="utf-8")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
DRY = {"generate", "evolve", "trilogy", "seed-fallbacks", "purge-cache"}
# A user the README's examples name besides the example personas.
U1 = "id: u1\nname: Uma One\nprogress: {active_days: 40}\n"


def shell_lines(kinds: tuple[str, ...] = ("sh",)) -> list[str]:
    lines = []
    for kind, body in re.findall(r"```(\w+)\n(.*?)```", README, re.S):
        if kind in kinds:
            lines += [ln for ln in body.replace("\\\n", " ").splitlines() if ln.strip()]
    return lines


def mirror_commands() -> list[tuple[dict[str, str], list[str], str]]:
    """(env, mirror args, README line) for every mirror command in the shell and cron blocks."""
    found = []
    for line in shell_lines(("sh", "cron")):
        tokens = shlex.split(line.replace("\\%", "%"), comments=True)
        exe = next((i for i, t in enumerate(tokens) if t == "mirror" or t.endswith("/bin/mirror")), None)
        if exe is None or (tokens[0] == "docker" and tokens[1] != "run"):
            continue
        env = dict(t.split("=", 1) for t in tokens[:exe] if re.fullmatch(r"[A-Z_]+=\S*", t))
        args = [t.strip("[]") if t.startswith("[") or t.endswith("]") else t for t in tokens[exe + 1 :]]
        found.append((env, args, line.strip()))
    return found


def how(args: list[str]) -> str:
    """'run', 'dry' or 'help' for one command."""
    command = args[0] if args else ""
    store = args[args.index("--store") + 1] if "--store" in args[:-1] else None
    forever = command == "serve" or (command == "worker" and "--until-empty" not in args)
    if (
        forever
        or args[:2] in (["runs", "poll"], ["runs", "show"])
        or "..." in args
        or store == "firebase"
        or any("$(" in a for a in args)
    ):
        return "help"
    # --enqueue only publishes jobs (the worker pays for them): as written
    return "dry" if command in DRY and "--dry-run" not in args and "--enqueue" not in args else "run"


COMMANDS = mirror_commands()


def test_the_readme_has_the_commands_it_shows():
    ran = {" ".join(a[:1]) for _, a, _ in COMMANDS}
    assert {"init", "users", "generate", "evolve", "doctor", "runs", "serve"} <= ran
    assert sum(how(a) == "run" for _, a, _ in COMMANDS) >= 5 and sum(how(a) == "dry" for _, a, _ in COMMANDS) >= 3


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme-project")
    (folder / "u1.yaml").write_text(U1)
    return folder


@pytest.mark.parametrize(("env", "args", "line"), COMMANDS, ids=[line[:70] for _, _, line in COMMANDS])
def test_readme_command(project, monkeypatch, env, args, line):
    monkeypatch.chdir(project)
    monkeypatch.delenv("MIRROR_FALLBACK_DIR")
    runner = CliRunner()
    if not (project / "mirror-data").exists():
        assert runner.invoke(app, ["users", "import", "u1.yaml"]).exit_code == 0
    mode = how(args)
    argv = [*args, "--help"] if mode == "help" else [*args, "--dry-run"] if mode == "dry" else args
    res = runner.invoke(app, argv, env={"COLUMNS": "120", **env})
    allowed = (0, 3) if args[:1] == ["doctor"] else (0,)  # doctor exits 3 when a check fails, as documented
    assert res.exit_code in allowed, (line, argv, res.output[-2000:])
    if mode == "help":
        assert "Usage: mirror" in res.stdout


def test_install_lines_use_the_built_wheel_and_python3():
    lines = shell_lines()
    assert not [ln for ln in lines if re.match(r"\s*python\s", ln)], "use python3: Debian has no 'python'"
    wheels = set(re.findall(r"mirror_realm_avatars-([\w.]+)-py3-none-any\.whl", README))
    assert wheels == {VERSION}, wheels
    unpublished = re.compile(r"(pipx install|uv tool install|pip install)\s+'?mirror-realm-avatars")
    assert not [ln for ln in lines if unpublished.search(ln)], "not on PyPI yet: install the built wheel"
    assert re.search(r"^dist:", (ROOT / "Makefile").read_text(), re.M)

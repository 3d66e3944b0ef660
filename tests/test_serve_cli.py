"""`mirror serve`'s own options: each has help, an environment variable and bounds; the port comes
from --port, else PORT (Cloud Run), else 8080; a missing serve extra is named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from firebase_auth import free_port
from typer.testing import CliRunner

from mirror_cli.cli.app import app

runner = CliRunner()


def test_every_server_option_has_help_env_and_bounds():
    res = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    for flag, env in (("--host", "MIRROR_HOST"), ("--port", "PORT"), ("--workers", "MIRROR_WORKERS")):
        line = next(ln for ln in text.splitlines() if f" {flag} " in ln)
        assert "<int>" not in line and "<str>" not in line, line  # a plain metavar
        assert f"[env var: {env}]" in line, line
    assert "0<=x<=65535" in text and "1<=x<=64" in text
    assert "Address to listen on" in text and "Processes" in text
    assert "--no-debug" not in text


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--port", "70000"], {}),
        (["--port", "-1"], {}),
        (["--workers", "0"], {}),
        ([], {"PORT": "http"}),
        ([], {"MIRROR_WORKERS": "100"}),
    ],
)
def test_out_of_bounds_values_are_usage_errors(args, env):
    res = runner.invoke(app, ["serve", *args], env=env)
    assert res.exit_code == 2, res.output


def test_a_missing_serve_extra_is_named(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the extra were not installed
    res = runner.invoke(app, ["serve", "--firebase-project", "demo-x", "--json"])
    assert res.exit_code == 3, res.output
    assert "uvicorn not installed" in res.stdout and "[serve]" in res.stdout


class Served:
    """`mirror serve` as a process in Auth-emulator mode (its health probe needs no emulator)."""

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
        cmd = [sys.executable, "-m", "mirror_cli", "serve", "--firebase-project", "demo-mirror-port", *args]
        full_env = {**os.environ, "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9", "MIRROR_AUTH_EMULATOR": "1", **env}
        self.log = tmp_path / "serve.log"
        self.proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=full_env, stdout=subprocess.DEVNULL, stderr=self.log.open("w")
        )

    def answers_on(self, port: int, timeout_s: float = 60) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[type[Served]]:
    started: list[Served] = []

    def start(args: list[str], env: dict[str, str]) -> Served:
        server = Served(tmp_path, args, env)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()


def test_serve_listens_on_PORT(serve_process):
    port = free_port()
    server = serve_process([], {"PORT": str(port)})
    assert server.answers_on(port), server.log.read_text()[-2000:]


def test_the_port_flag_wins_over_PORT(serve_process):
    env_port, flag_port = free_port(), free_port()
    server = serve_process(["--port", str(flag_port)], {"PORT": str(env_port)})
    assert server.answers_on(flag_port), server.log.read_text()[-2000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{env_port}/api/v1/healthz", timeout=1)

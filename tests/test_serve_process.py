"""`mirror serve` as a real process: SIGTERM lets in-flight generations finish and be stored, and
the command refuses the Auth emulator when the settings say production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import make_config_dir
from firebase_auth import free_port
from serve_support import SERVE_LIMITS, ServeProcess, auth_env, bearer
from typer.testing import CliRunner

from mirror_cli.models import Persona
from mirror_cli.spool import Spool
from mirror_cli.stores.local import LocalStore

PROGRESS = {"active_days": 31, "goals_completed": 2}


def _serving(tmp_path: Path, openai_env: Any, auth_env: Any, wait_s: float) -> tuple[ServeProcess, str, str, Path]:
    data = tmp_path / "data"
    uid, token = auth_env.sign_up()
    store = LocalStore(root=data)
    store.put_user(Persona(id=uid, name="Ada"))
    store.close()
    config = make_config_dir(tmp_path, SERVE_LIMITS)
    flags = ["--store", "local", "--data-dir", str(data), "--config-dir", str(config)]
    flags += ["--provider", "openai", "--base-url", openai_env.url, "--firebase-project", auth_env.project]
    server = ServeProcess(data.parent / "serve.log", flags, {"MIRROR_SERVE_WAIT_S": str(wait_s)})
    return server, uid, token, data


def _sigterm_while_held(server: ServeProcess, openai_env: Any, says: str) -> None:
    """With the provider's answer held (the request in flight), SIGTERM the server; release the
    answer only once the server's log shows it is shutting down."""
    openai_env.wait_for_requests(1)
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while says not in server.log.read_text():
        assert server.proc.poll() is None, server.log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"no {says!r} in the log: " + server.log.read_text()[-2000:]
        time.sleep(0.02)
    assert not openai_env.ledger  # still held: the job finishes after the signal
    openai_env.release()


def _stored(data: Path, uid: str) -> list[Any]:
    store = LocalStore(root=data)
    try:
        return store.list_avatars(uid)
    finally:
        store.close()


def test_sigterm_mid_request_finishes_the_job(tmp_path, openai_env, auth_env):
    openai_env.hold()
    server, uid, token, data = _serving(tmp_path, openai_env, auth_env, wait_s=30)
    answer: dict[str, httpx.Response] = {}

    def tap() -> None:
        answer["r"] = httpx.post(
            server.url + "/api/v1/avatar/generate",
            json={"user_id": uid, "evolution_stage": "month", "progress_metrics": PROGRESS},
            headers=bearer(token),
            timeout=60,
        )

    try:
        client = threading.Thread(target=tap)
        client.start()
        _sigterm_while_held(server, openai_env, "Shutting down")  # uvicorn's word for the signal
        client.join(timeout=60)
        # uvicorn finishes gracefully, then re-raises the signal: the exit status says SIGTERM
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM), server.log.read_text()[-2000:]
    finally:
        server.kill()
    assert answer["r"].status_code == 200, answer["r"].text
    made = answer["r"].json()
    assert made["status"] == "generated" and made["cost"] > 0
    assert [r.id for r in _stored(data, uid)] == [made["avatar_id"]]
    assert len(openai_env.ledger) == 1 and openai_env.gate_timeouts == 0
    # the paid image went through the spool (the folder exists) and left it once stored
    assert (data / "spool").is_dir()
    assert Spool(data / "spool").pending() == []
    assert [p for p in (data / "spool").rglob("*") if p.is_file()] == []


def test_sigterm_after_202_waits_for_the_job(tmp_path, openai_env, auth_env):
    openai_env.hold()
    server, uid, token, data = _serving(tmp_path, openai_env, auth_env, wait_s=0.2)
    try:
        accepted = httpx.post(
            server.url + "/api/v1/avatar/generate",
            json={"user_id": uid, "evolution_stage": "month", "progress_metrics": PROGRESS},
            headers=bearer(token),
            timeout=60,
        )
        assert accepted.status_code == 202, accepted.text
        _sigterm_while_held(server, openai_env, "waiting for 1 generation(s) in flight")
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        server.kill()
    assert len(_stored(data, uid)) == 1 and len(openai_env.ledger) == 1
    assert openai_env.gate_timeouts == 0


def test_serve_refuses_the_auth_emulator_in_production(auth_env, monkeypatch):
    from mirror_cli.cli.app import app

    monkeypatch.setenv("MIRROR_ENVIRONMENT", "production")
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 3, result.output
    assert "FIREBASE_AUTH_EMULATOR_HOST" in result.output

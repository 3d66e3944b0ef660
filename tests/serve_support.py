"""Shared pieces of the serve tests: a real uvicorn server in a thread, users with emulator tokens,
and settings that point the app at the Firestore/Storage emulators and the loopback OpenAI server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config_dir
from firebase_auth import AuthEmulator, free_port

from mirror_cli.models import Persona
from mirror_cli.settings import Settings, load_settings

# Fast retries, but a request timeout well above the loopback server's slowest answer in these
# tests: a timed-out image request may have been billed (and the fake server bills it).
SERVE_LIMITS: dict[str, Any] = {
    "per_user_daily": 50,
    "system_daily": 1000,
    "retry": {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05, "request_timeout_s": 60},
}


class LiveServer:
    """``create_app`` served by a real uvicorn on a free loopback port, in a thread of the test."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    @property
    def service(self) -> Any:
        return self.app.state.service

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


class ServeProcess:
    """`mirror serve` as a real process on a free port (settings: ``flags`` and ``env`` over this
    process's environment), its stderr in ``log``; started when /healthz answers."""

    def __init__(self, log: Path, flags: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "mirror_cli", "serve", "--port", str(self.port), *flags]
        self.proc = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log.open("w")
        )
        deadline = time.monotonic() + 120
        import httpx

        while True:
            try:
                if httpx.get(self.url + "/api/v1/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("mirror serve did not start: " + log.read_text()[-2000:])
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def service_account(tmp_path: Path, project: str) -> Path:
    """A throwaway service-account key: the Storage emulator's objects get real V4 signed URLs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": project,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "mirror@example.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    return path


@pytest.fixture
def auth_env(auth_emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch) -> AuthEmulator:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", auth_emulator.host)
    monkeypatch.setenv("MIRROR_AUTH_EMULATOR", "1")  # unsigned emulator tokens: allowed explicitly
    monkeypatch.setenv("MIRROR_FIREBASE_PROJECT", auth_emulator.project)
    return auth_emulator


@pytest.fixture
def serve_settings(
    auth_env: AuthEmulator,
    firebase_env: dict[str, str],
    openai_env: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """A function making Settings for the app: Firestore + Storage emulators (the project is the
    Auth emulator's, the bucket this test's own), the loopback OpenAI server, fast retries."""
    # The auth emulator's project doubles as the Firestore project; uids are unique per sign-up.
    monkeypatch.setenv("MIRROR_FIREBASE_PROJECT", auth_env.project)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account(tmp_path, auth_env.project)))

    def make(limits: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        flags = {
            "store": "firebase",
            "provider": "openai",
            "base_url": openai_env.url,
            "config_dir": make_config_dir(tmp_path, {**SERVE_LIMITS, **(limits or {})}),
            "data_dir": tmp_path / "data",
            # a test that expects an answer (not 202) waits for it even on a loaded machine;
            # the 202 path sets a short wait itself
            "serve_wait_s": 50,  # below the clients' 60 s timeout
            **overrides,
        }
        return load_settings(flags)

    return make


@pytest.fixture
def live() -> Iterator[Any]:
    """``live(settings)`` starts the app on a real uvicorn; every server is stopped at the end."""
    from mirror_cli.server.app import create_app

    servers: list[LiveServer] = []

    def start(settings: Settings) -> LiveServer:
        server = LiveServer(create_app(settings))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def new_user(emu: AuthEmulator, store: Any, name: str = "Ada") -> tuple[str, str]:
    """A signed-up user (uid, ID token) whose profile is in the store."""
    uid, token = emu.sign_up()
    store.put_user(Persona(id=uid, name=name))
    return uid, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def images_bought(server: Any) -> int:
    """The image requests the loopback OpenAI server answered."""
    return len([r for r in server.requests if "images" in r.get("path", "")])


def poll_job(c: Any, url: str, timeout_s: float = 120) -> Any:
    """GET a job's poll URL until it answers anything but 202 (the job ended), within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = c.get(url)
        if resp.status_code != 202:
            return resp
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.1)

"""The Firebase Auth emulator (firebase-tools from npm, pinned in tests/auth_emulator/), started on
free loopback ports with a firebase.json of its own in a temp dir. It is pure Node: no Java.

Users sign up and sign in through its REST API, exactly as the app's Firebase SDK does, and the
ID tokens it returns are real emulator tokens (unsigned, as the emulator's always are).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from emulators import ServerProcess, free_port

HERE = Path(__file__).resolve().parent / "auth_emulator"
CLI = HERE / "node_modules" / "firebase-tools" / "lib" / "bin" / "firebase.js"
PROJECT = "demo-mirror-serve"  # a demo- project: firebase-tools then never calls a real Google service


class AuthEmulator(ServerProcess):
    def __init__(self, project: str = PROJECT, timeout_s: float = 120.0) -> None:
        if not CLI.exists():
            raise RuntimeError("The Auth emulator is not installed: run `make auth-emulator` (make test does).")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is needed for the Firebase Auth emulator.")
        self.project = project
        self.dir = Path(tempfile.mkdtemp(prefix="mirror-auth-emu-"))
        self.port = free_port()
        config = {
            "emulators": {
                "auth": {"host": "127.0.0.1", "port": self.port},
                "hub": {"host": "127.0.0.1", "port": free_port()},
                "logging": {"host": "127.0.0.1", "port": free_port()},
                "ui": {"enabled": False},
                "singleProjectMode": True,
            }
        }
        (self.dir / "firebase.json").write_text(json.dumps(config))
        env = {
            "PATH": os.path.dirname(node),  # node alone: proves no Java is needed
            "HOME": str(self.dir),
            "TMPDIR": str(self.dir),
            "CI": "1",
            "FIREBASE_CLI_DISABLE_UPDATE_CHECK": "true",
        }
        self.log_path = self.dir / "emulator.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [node, str(CLI), "emulators:start", "--only", "auth", "--project", project],
            cwd=self.dir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.host = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"The Auth emulator exited: {(self.dir / 'emulator.log').read_text()[-800:]}")
            try:
                self._call("GET", f"/emulator/v1/projects/{project}/config")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("The Auth emulator did not start in time.") from None
                time.sleep(0.2)

    # ------------------------------------------------------------------------------ REST
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, owner: bool = False) -> Any:
        req = urllib.request.Request(
            f"http://{self.host}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json", **({"Authorization": "Bearer owner"} if owner else {})},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def sign_up(self, email: str | None = None, password: str = "secret-123") -> tuple[str, str]:
        """A new user through the client REST API: (uid, ID token)."""
        email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
        out = self._call(
            "POST",
            "/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake-api-key",
            {"email": email, "password": password, "returnSecureToken": True},
        )
        return out["localId"], out["idToken"]

    def sign_in(self, email: str, password: str = "secret-123") -> str:
        out = self._call(
            "POST",
            "/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword?key=fake-api-key",
            {"email": email, "password": password, "returnSecureToken": True},
        )
        return str(out["idToken"])

    def admin_user(self) -> tuple[str, str]:
        """A user with the 'admin' custom claim, set through firebase-admin against the emulator;
        the ID token of a fresh sign-in carries it."""
        import firebase_admin
        from firebase_admin import auth

        email = f"admin{uuid.uuid4().hex[:8]}@example.com"
        uid, _ = self.sign_up(email)
        old = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = self.host
        app = firebase_admin.initialize_app(
            _Placeholder(), {"projectId": self.project}, name=f"claims-{uuid.uuid4().hex[:6]}"
        )
        try:
            auth.set_custom_user_claims(uid, {"admin": True}, app=app)
        finally:
            firebase_admin.delete_app(app)
            if old is None:
                os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
            else:
                os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = old
        return uid, self.sign_in(email)

    def stop(self) -> None:
        super().stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _placeholder_base() -> type:
    from firebase_admin import credentials

    return credentials.Base  # type: ignore[no-any-return]


class _Placeholder(_placeholder_base()):  # type: ignore[misc]
    """firebase-admin uses its own credentials against the emulator; the app needs one to exist."""

    def get_credential(self) -> Any:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()

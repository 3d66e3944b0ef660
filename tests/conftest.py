from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import FakeOpenAI  # noqa: E402

from mirror_cli.core import Mirror  # noqa: E402
from mirror_cli.models import AvatarRecord  # noqa: E402
from mirror_cli.resources import default_config_dir  # noqa: E402
from mirror_cli.settings import load_settings  # noqa: E402

# The shipped configs (package data). Tests never name repository paths for them.
CONFIGS = default_config_dir()

# The instant every test runs at unless it pins its own: the core's clock (and the CLI's, through
# MIRROR_NOW) starts here and moves on. No test depends on the calendar day it runs on.
PINNED_NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow stress tests (and the wheel install) first: on several workers (make test runs -n)
    they overlap the many short tests instead of trailing at the end."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") or item.get_closest_marker("install") else 1)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's MIRROR_* settings, key or mirror.yaml; the shipped configs
    apply, and a test's own fallback set (empty: the shipped one serves) is in its tmp_path."""
    for key in list(os.environ):
        if key.startswith("MIRROR_") or key in (
            "OPENAI_API_KEY",
            "CLOUD_RUN_TASK_INDEX",
            "CLOUD_RUN_TASK_COUNT",
            "JOB_COMPLETION_INDEX",
        ):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MIRROR_FALLBACK_DIR", str(tmp_path / "fallback_assets"))
    monkeypatch.setenv("MIRROR_NOW", PINNED_NOW.isoformat())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_core(data_dir: Path) -> Iterator[Callable[..., Mirror]]:
    made: list[Mirror] = []

    def factory(*, examples: bool = True, **flags: Any) -> Mirror:
        """A core on the test's store; ``examples`` imports the example personas into it first
        (as 'mirror users import --examples' does): pass False for a store with no users."""
        flags.setdefault("data_dir", data_dir)
        now = flags.pop("now", None)
        core = Mirror(load_settings(flags), now=now)
        made.append(core)
        if examples:
            core.import_examples()
        return core

    yield factory
    for core in made:
        core.close()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-" + "x" * 24)
    return openai_server


def import_examples(data_dir: Path, **flags: Any) -> list[str]:
    """What 'mirror users import --examples' does, for tests that run the CLI on the example
    personas (the store kind comes from the environment, as for the CLI)."""
    core = Mirror(load_settings({"data_dir": data_dir, **flags}))
    try:
        return core.import_examples()
    finally:
        core.close()


def spooled_request_ids(spool_root: Path) -> set[str]:
    """The request ids of the paid answers in a spool, read from the entries' header lines as
    they are on disk: after a SIGKILL, what the killed process had received and kept."""
    ids: set[str] = set()
    for entry in spool_root.glob("*/*.spool"):
        with entry.open("rb") as fh:
            head = json.loads(fh.readline() or b"{}")
        if head.get("request_id"):
            ids.add(head["request_id"])
    return ids


def make_config_dir(tmp_path: Path, limits: dict[str, Any] | None = None) -> Path:
    """A copy of the shipped configs with some limits changed (fast retries for tests)."""
    import shutil

    import yaml

    cfg = tmp_path / "configs"
    if not cfg.exists():
        shutil.copytree(CONFIGS, cfg)
    data = yaml.safe_load((cfg / "limits.yaml").read_text())
    data["retry"] = {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05, "request_timeout_s": 2}
    data["rate_limits"] = {}
    for key, value in (limits or {}).items():
        data[key] = value
    (cfg / "limits.yaml").write_text(yaml.safe_dump(data))
    return cfg


@pytest.fixture
def fast_configs(tmp_path: Path) -> Path:
    return make_config_dir(tmp_path)


@pytest.fixture(scope="session")
def emulators() -> Iterator[Any]:
    import emulators as emu

    envs = emu.start()
    yield envs
    envs.stop()


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Any]:
    """The official Pub/Sub emulator, once per session (tests use a topic of their own)."""
    from emulators import PubSubEmulator

    emu = PubSubEmulator()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def auth_emulator() -> Iterator[Any]:
    """The Firebase Auth emulator (firebase-tools, tests/auth_emulator), once per session."""
    from firebase_auth import AuthEmulator

    emu = AuthEmulator()
    yield emu
    emu.stop()


@pytest.fixture
def firebase_env(emulators: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the firebase store at the emulators, in a project and bucket of this test's own."""
    project, bucket = emulators.new_namespace()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulators.firestore.host)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulators.storage_url)
    monkeypatch.setenv("MIRROR_FIREBASE_PROJECT", project)
    monkeypatch.setenv("MIRROR_FIREBASE_BUCKET", bucket)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return {"project": project, "bucket": bucket}


def avatar_record(uid: str = "u1", aid: str = "a1", target: str = "month", **fields: Any) -> AvatarRecord:
    """An avatar's record as a test stores it: ``target`` of ``uid`` (its stage too, unless given),
    a 1024 px medium image from the local renderer at ``avatars/<uid>/<target>-<aid>.webp``;
    ``fields`` set any other field or override these."""
    defaults: dict[str, Any] = {
        "id": aid,
        "user_id": uid,
        "target": target,
        "stage": target,
        "request_key": "k" * 64,
        "image_path": f"avatars/{uid}/{target}-{aid}.webp",
        "width": 1024,
        "height": 1024,
        "provider": "local",
        "model": "local",
        "quality": "medium",
    }
    return AvatarRecord(**(defaults | fields))


@pytest.fixture(params=["local", "firebase"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each store back-end in turn, the Firestore one on the emulators: a store test runs on both
    (a new back-end joins by adding a param)."""
    from mirror_cli.stores.base import Store

    s: Store
    if request.param == "local":
        from mirror_cli.stores.local import LocalStore

        s = LocalStore(root=tmp_path / "store")
    else:
        from mirror_cli.stores.firebase import FirebaseStore

        request.getfixturevalue("firebase_env")
        s = FirebaseStore(load_settings({"data_dir": tmp_path / "data"}))
    yield s
    s.close()


@pytest.fixture(params=["local", "firebase"])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store a command-line test runs on, once per back-end (MIRROR_STORE; Firestore on the
    emulators)."""
    if request.param == "firebase":
        request.getfixturevalue("firebase_env")
        monkeypatch.setenv("MIRROR_STORE", "firebase")
    return str(request.param)


def openai_flags(url: str, config_dir: Path, data_dir: Path) -> list[str]:
    """CLI flags that point a command at the loopback OpenAI server, a config dir and a data dir."""
    return ["--provider", "openai", "--base-url", url, "--config-dir", str(config_dir), "--data-dir", str(data_dir)]

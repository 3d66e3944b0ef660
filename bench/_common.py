"""Shared helpers for the benchmarks: a loopback OpenAI server in a child process, synthetic users,
small-render configs and bulk seeding of users with a first avatar."""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import sys
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from mirror_cli.models import Appearance, AvatarRecord, Persona, Progress  # noqa: E402
from mirror_cli.stores.base import DUE_INDEX_VERSION, shard_bucket  # noqa: E402

SKINS = ["pale", "light", "medium", "tan", "brown", "dark"]
HAIRS = ["shortFlat", "bob", "fro", "shortCurly", "straight01", "hijab", "bun", "dreads01"]
COLORS = ["black", "darkBrown", "brown", "auburn", "blonde", "red"]


def synthetic_users(n: int, seed: int = 7, active_days: int = 0) -> list[Persona]:
    rng = random.Random(seed)
    return [
        Persona(
            id=f"bench{i:05d}",
            name=f"User {i}",
            appearance=Appearance(
                skin=rng.choice(SKINS),
                hair_style=rng.choice(HAIRS),  # type: ignore[arg-type]
                hair_color=rng.choice(COLORS),
            ),  # type: ignore[arg-type]
            progress=Progress(active_days=active_days),
        )
        for i in range(n)
    ]


def start_server(latency: float, images_per_minute: float | None, window_s: float = 60.0) -> tuple[Any, str]:
    from openai_server import serve_forever

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=serve_forever, args=(q, latency, images_per_minute, window_s), daemon=True)
    proc.start()
    return proc, q.get(timeout=30)


def server_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=10) as r:
        return json.loads(r.read())


def write_limits(cfg: Path, model: str, ipm: float, window_s: float = 60.0, **extra: Any) -> None:
    import yaml

    data = yaml.safe_load((cfg / "limits.yaml").read_text())
    data["rate_limits"] = {model: {"images_per_minute": ipm, "window_s": window_s}}
    data.update(extra)
    (cfg / "limits.yaml").write_text(yaml.safe_dump(data))


def small_configs(work: Path, size: int = 256) -> Path:
    """A copy of the shipped configs under ``work`` that renders (and gates) at ``size`` pixels:
    the counts a bench measures do not depend on the size, its wall time does."""
    import yaml

    from mirror_cli.resources import default_config_dir

    cfg = work / "configs"
    shutil.copytree(default_config_dir(), cfg)
    models = yaml.safe_load((cfg / "models.yaml").read_text())
    models["models"]["local"]["sizes"].append(f"{size}x{size}")
    (cfg / "models.yaml").write_text(yaml.safe_dump(models))
    style = yaml.safe_load((cfg / "styles" / "daymi.yaml").read_text())
    style["gate"]["size"] = size
    (cfg / "styles" / "daymi.yaml").write_text(yaml.safe_dump(style))
    return cfg


def first_avatar(uid: str, i: int) -> AvatarRecord:
    """The newReflection avatar a seeded user already has (its image is never read)."""
    return AvatarRecord(
        id=f"a{i}",
        user_id=uid,
        target="newReflection",
        stage="newReflection",
        request_key="k" * 64,
        image_path=f"avatars/{uid}/newReflection-a{i}.webp",
        width=256,
        height=256,
        provider="local",
        model="local",
        quality="medium",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def bulk_seed(
    core: Any,
    users: Sequence[tuple[Persona, AvatarRecord]],
    stamp: str,
    next_window: Callable[[Persona], int] | None = None,
) -> None:
    """Write what `users import` and a first avatar leave in the store, in bulk (one SQLite
    transaction, or Firestore batches of 500): seeding is not what a bench measures. ``next_window``
    gives each user's next nightly window (None: the store's default, every window open)."""
    store: Any = core.store
    if core.settings.store == "local":
        db = store._open()
        db.execute("BEGIN")
        for p, r in users:
            db.execute(
                "INSERT INTO users(uid, persona, updated_at, latest_rank, shard, active_days, next_window) "
                "VALUES (?,?,?,0,?,?,?)",
                (
                    p.id,
                    p.model_dump_json(),
                    stamp,
                    shard_bucket(p.id),
                    p.progress.active_days,
                    0 if next_window is None else next_window(p),
                ),
            )
            db.execute(
                "INSERT INTO avatars(id, uid, target, created_at, record) VALUES (?,?,?,?,?)",
                (r.id, p.id, r.target, r.created_at.isoformat(), r.model_dump_json()),
            )
        db.execute("COMMIT")
        return
    batch, pending = store.db.batch(), 0
    for p, r in users:
        doc = store.db.collection("users").document(p.id)
        body = {**p.model_dump(mode="json"), "uid": p.id, "updated_at": stamp, "shard": shard_bucket(p.id)}
        window = {} if next_window is None else {"next_window": next_window(p)}
        batch.set(doc, {**body, "latest_rank": 0, **window})
        batch.set(doc.collection("avatars").document(r.id), {**json.loads(r.model_dump_json()), "created_at": stamp})
        pending += 2
        if pending >= 500:
            batch.commit(timeout=300)
            batch, pending = store.db.batch(), 0
    if pending:
        batch.commit(timeout=300)
    store.set_due_index_version(DUE_INDEX_VERSION)

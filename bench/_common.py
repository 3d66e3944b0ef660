"""Shared helpers for the benchmarks: a loopback OpenAI server in a child process, synthetic users."""

from __future__ import annotations

import json
import multiprocessing
import random
import sys
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from mirror_cli.models import Appearance, Persona, Progress  # noqa: E402

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

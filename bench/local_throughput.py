"""Local provider: jobs per second through the whole pipeline versus an independent floor,
measured in the same run, at concurrency 1 and at the default (one job per core).

The floor knows nothing of the project's renderer: the stock DiceBear avataaars style, the same
seed and appearance, rasterised by resvg at full size, decoded and encoded to WebP (the same
settings the pipeline stores), in its own process pool with as many workers as the pipeline has
jobs in flight. The pipeline does all that plus the scene, planning, request keys, the spool,
the quality gate, the thumbnail, the store and the ledger. Goal: >= 0.8 of the floor, and the
default about `cores` times concurrency 1.

    python bench/local_throughput.py [--jobs 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from _common import ROOT, synthetic_users

_STYLE: Any = None
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes, from /proc (load on a shared machine does not bend it)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def _floor_init() -> None:
    global _STYLE
    from dicebear import Style

    _STYLE = Style(json.loads((resources.files("dicebear_styles") / "avataaars.json").read_text(encoding="utf-8")))


def _floor_one(options: dict[str, Any]) -> int:
    import resvg_py
    from dicebear import Avatar
    from PIL import Image

    png = resvg_py.svg_to_bytes(
        svg_string=str(Avatar(_STYLE, options)), width=1024, height=1024, skip_system_fonts=True
    )
    img = Image.open(io.BytesIO(bytes(png))).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="WEBP", quality=90, method=2)
    return len(buf.getvalue())


def stock_options(spec: Any) -> dict[str, Any]:
    """The same person in stock avataaars terms (the floor's own mapping)."""
    from mirror_cli.render import HAIR_HEX, SKIN_HEX

    a = spec.appearance
    return {
        "seed": spec.seed,
        "clothesVariant": "hoodie",
        "clothesColor": [a.hoodie_color.lstrip("#").lower()],
        "skinColor": [SKIN_HEX[a.skin]],
        "topVariant": a.hair_style,
        "topProbability": 100,
        "hairColor": [HAIR_HEX[a.hair_color]],
        "eyesVariant": "default",
        "eyebrowsVariant": spec.expression["eyebrows"],
        "mouthVariant": spec.expression["mouth"],
        "accessoriesProbability": 0,
        "facialHairProbability": 0,
    }


def floor(options: list[dict[str, Any]], workers: int) -> tuple[float, float]:
    """(jobs per second, CPU seconds per job) of the bare loop with `workers` processes."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_floor_init) as ex:
        list(ex.map(_floor_one, options[:workers]))  # warm: workers up, style built
        pids = list(ex._processes)  # type: ignore[attr-defined]
        c0, t0 = cpu_seconds(pids) + time.process_time(), time.perf_counter()
        list(ex.map(_floor_one, options, chunksize=1))
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(pids) + time.process_time() - c0
        return len(options) / wall, cpu / len(options)


def pipeline(
    users: list[Any], cfg: Path, data: Path, warm_cache: Path, concurrency: int | None
) -> tuple[float, float, int]:
    """(jobs per second, CPU seconds per job, jobs in flight) of `mirror generate`."""
    from mirror_cli.core import Mirror
    from mirror_cli.render import pool
    from mirror_cli.settings import load_settings

    if warm_cache.exists():
        shutil.copytree(warm_cache, data / "cache" / "render", dirs_exist_ok=True)
    core = Mirror(load_settings({"data_dir": data, "config_dir": cfg, "concurrency": concurrency}))
    try:
        core.import_users(users)
        in_flight = core.pipeline().concurrency
        pids = list(pool.pool()._processes)  # type: ignore[attr-defined]
        c0, t0 = cpu_seconds(pids) + time.process_time(), time.perf_counter()
        report = core.generate([u.id for u in users], "month")
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(pids) + time.process_time() - c0
        assert report.count("generated") == len(users), report.summary()
        return len(users) / elapsed, cpu / len(users), in_flight
    finally:
        core.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from mirror_cli.core import Mirror
    from mirror_cli.render import pool
    from mirror_cli.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="mirror-local-"))
    try:
        cfg = work / "configs"
        shutil.copytree(ROOT / "configs", cfg)
        for persona in (cfg / "personas").glob("*.yaml"):
            persona.unlink()
        users = synthetic_users(args.jobs, seed=5)
        warm = synthetic_users(4, seed=99)
        for i, u in enumerate(warm):
            u.id = f"warm{i}"
        core = Mirror(load_settings({"data_dir": work / "plan", "config_dir": cfg}))
        core.import_users(users)
        planner = core.planner()
        options = [stock_options(planner.plan(u, u.progress, "month").request.spec) for u in users]
        core.close()

        cores = pool.cores()
        t0 = time.perf_counter()
        pipeline(warm, cfg, work / "warm", work / "none", 1)  # cold: workers start, scene layers drawn once
        cold = time.perf_counter() - t0
        cache = work / "warm" / "cache" / "render"
        print(f"cores={cores} jobs={args.jobs} stage=month size=1024 (warm-up with an empty layer cache: {cold:.1f} s)")
        rows = []
        for label, conc in (("concurrency 1", 1), ("default", None)):
            # Alternate floor and pipeline and keep the best of each: the machine may be shared.
            tools, bares = [], []
            for r in range(args.rounds):
                tool, tool_cpu, in_flight = pipeline(users, cfg, work / f"run-{label[:3]}-{r}", cache, conc)
                tools.append((tool, tool_cpu))
                bares.append(floor(options, in_flight))
            (bare, bare_cpu), (tool, tool_cpu) = max(bares), max(tools)
            rows.append((in_flight, bare, tool))
            print(
                f"{label:>14} (in flight {in_flight}): floor {bare:5.2f} jobs/s, mirror generate {tool:5.2f} jobs/s,"
                f" ratio {tool / bare:.2f}   | CPU per job: floor {bare_cpu * 1000:.0f} ms, mirror"
                f" {tool_cpu * 1000:.0f} ms, ratio {bare_cpu / tool_cpu:.2f}"
            )
        (_, b1, t1), (n, bn, tn) = rows
        print(
            f"scaling 1 -> {n} in flight: floor x{bn / b1:.2f}, mirror x{tn / t1:.2f} (goal: ratio >= 0.8, ~x{cores})"
        )
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {cores} cores (others' load bends wall time)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

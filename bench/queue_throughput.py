"""Queue throughput: N `mirror worker` processes drain one queue of avatar jobs at a fixed
images-per-minute limit (the minute scaled by --window for a short run), against the loopback
OpenAI server in its own process, which enforces the same limit and counts 429s.

Figures: images/min achieved (scaled back to a real minute) against the limit, wall time,
the server's 429 answers (> 0: the workers together went over the limit), images paid per job.

    .venv/bin/python bench/queue_throughput.py --jobs 24 --ipm 30 --window 6 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, server_stats, start_server, synthetic_users, write_limits

MODEL = "gpt-image-2"


def one(workers: int, jobs: int, ipm: float, window: float, latency: float) -> dict[str, float]:
    proc, url = start_server(latency, ipm, window)
    tmp = Path(tempfile.mkdtemp(prefix="mirror-queue-bench-"))
    try:
        cfg = tmp / "configs"
        shutil.copytree(ROOT / "mirror_cli" / "data" / "configs", cfg)
        write_limits(cfg, MODEL, ipm, window, per_user_daily=1000, system_daily=100_000)
        env = {
            **os.environ,
            "MIRROR_DATA_DIR": str(tmp / "data"),
            "MIRROR_CONFIG_DIR": str(cfg),
            "MIRROR_PROVIDER": "openai",
            "MIRROR_BASE_URL": url,
            "MIRROR_MODEL": MODEL,
            "OPENAI_API_KEY": "sk-bench-" + "x" * 24,
        }
        sys.path.insert(0, str(ROOT))
        from mirror_cli.core import Mirror
        from mirror_cli.settings import load_settings
        from mirror_cli.worker import job_message

        os.environ.update({k: v for k, v in env.items() if k.startswith(("MIRROR_", "OPENAI_"))})
        core = Mirror(load_settings({}))
        try:
            users = synthetic_users(jobs)
            core.import_users(users)
            for u in users:
                core.queue.publish(job_message(u.id, "newReflection"), u.id, {"request_key": "-"})
        finally:
            core.close()
        exe = str(Path(sys.executable).parent / "mirror")
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [exe, "worker", "--until-empty", "--json"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        for p in procs:
            p.wait(timeout=1800)
        wall = time.perf_counter() - started
        stats = server_stats(url)
        per_min = stats["images"] / wall * window  # images per (scaled) minute
        return {
            "workers": workers,
            "jobs": jobs,
            "images": stats["images"],
            "rate_limited_429": stats["rate_limited"],
            "wall_s": round(wall, 1),
            "images_per_minute": round(per_min, 1),
            "limit": ipm,
        }
    finally:
        proc.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--ipm", type=float, default=30, help="images per (scaled) minute, server and workers")
    ap.add_argument("--window", type=float, default=6.0, help="seconds standing for a minute")
    ap.add_argument("--latency", type=float, default=0.2, help="the server's seconds per image")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    a = ap.parse_args()
    print(f"queue throughput: {a.jobs} jobs, limit {a.ipm:g} images/min (a minute = {a.window:g} s)")
    print(f"{'workers':>7} {'images':>6} {'429s':>5} {'wall s':>7} {'images/min':>10} {'limit':>6}")
    for n in a.workers:
        r = one(n, a.jobs, a.ipm, a.window, a.latency)
        print(
            f"{r['workers']:>7} {r['images']:>6} {r['rate_limited_429']:>5} {r['wall_s']:>7} "
            f"{r['images_per_minute']:>10} {r['limit']:>6g}"
        )


if __name__ == "__main__":
    main()

"""Throughput against the loopback OpenAI server under an images/min limit.

    python bench/openai_pacing.py [--jobs 100] [--limit 600] [--latency 0.3] [--concurrency 16]

Prints achieved images/min divided by the limit (goal >= 0.95), the 429s provoked (goal 0 when
the limit is known) and the tool's own CPU seconds per job (the server runs in another process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import server_stats, start_server, synthetic_users, write_limits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--limit", type=float, default=600.0, help="images per minute")
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    proc, url = start_server(args.latency, args.limit)
    work = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    try:
        cfg = work / "configs"
        from mirror_cli.resources import default_config_dir

        shutil.copytree(default_config_dir(), cfg)
        write_limits(
            cfg,
            "gpt-image-2",
            args.limit,
            per_user_daily=100,
            system_daily=100_000,
            monthly_budget_usd=10_000,
        )
        os.environ["OPENAI_API_KEY"] = "sk-bench-" + "0" * 24
        from mirror_cli.core import Mirror
        from mirror_cli.settings import load_settings

        core = Mirror(
            load_settings(
                {
                    "data_dir": work / "data",
                    "config_dir": cfg,
                    "provider": "openai",
                    "base_url": url,
                    "concurrency": args.concurrency,
                }
            )
        )
        core.import_users(synthetic_users(args.jobs))
        users = [p.id for p in synthetic_users(args.jobs)]
        cpu0, t0 = time.process_time(), time.perf_counter()
        report = core.generate(users, "newReflection")
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stats = server_stats(url)
        n = report.count("generated")
        # The limit governs request starts: the rate of starts seen by the server is what it allows.
        start_rate = (stats["requests"] - 1) / (stats["last"] - stats["first"]) * 60
        end_to_end = n / wall * 60
        print(
            f"jobs={args.jobs} generated={n} failed={report.failed} "
            f"limit={args.limit:.0f}/min latency={args.latency}s concurrency={args.concurrency}"
        )
        print(f"achieved start rate={start_rate:.1f} images/min  ratio={start_rate / args.limit:.3f} (goal >= 0.95)")
        print(
            f"end to end incl. start-up and last response: {end_to_end:.1f} images/min over {wall:.2f}s "
            f"(ratio {end_to_end / args.limit:.3f})"
        )
        print(
            f"429s provoked={stats['rate_limited']} (goal 0)  server images={stats['images']} "
            f"requests={stats['requests']}"
        )
        print(f"tool CPU={cpu:.2f}s  CPU per job={cpu / max(1, args.jobs) * 1000:.1f} ms")
        core.close()
    finally:
        proc.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

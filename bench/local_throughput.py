"""Local provider: jobs per second through the whole pipeline versus the floor of rendering and
encoding the same images in a bare loop (goal >= 0.8 of the floor).

    python bench/local_throughput.py [--jobs 60] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import synthetic_users

from mirror_cli import imaging
from mirror_cli.core import Mirror
from mirror_cli.render import render_png
from mirror_cli.resources import default_config_dir
from mirror_cli.settings import load_settings
from mirror_cli.validate import check_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirror-local-"))
    try:
        cfg = work / "configs"
        shutil.copytree(default_config_dir(), cfg)
        users = synthetic_users(args.jobs, seed=5)
        core = Mirror(load_settings({"data_dir": work / "data", "config_dir": cfg, "concurrency": args.concurrency}))
        core.import_users(users)
        planner = core.planner()
        specs = [planner.plan(u, u.progress, "month").request.spec for u in users]
        palette = core.configs.style.palette.model_dump()
        gate = core.configs.style.gate

        t0 = time.perf_counter()
        for spec in specs:  # the floor: the same images rendered, encoded and checked, nothing else
            assert spec is not None
            img, _, _ = imaging.post_process(render_png(spec, palette), 1024)
            check_image(img, gate)
        bare = args.jobs / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        report = core.generate([u.id for u in users], "month")
        tool = report.count("generated") / (time.perf_counter() - t0)
        print(f"jobs={args.jobs} concurrency={args.concurrency}")
        print(f"bare loop (render + WebP + thumbnail + gate): {bare:.2f} jobs/s")
        print(f"mirror generate (plan, key, cache, render, spool-free store, ledger): {tool:.2f} jobs/s")
        print(f"ratio {tool / bare:.2f} of the floor (goal >= 0.8)")
        core.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

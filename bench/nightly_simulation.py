"""A seeded simulation of the nightly batch: N users over D days of progress (active, slowing and
dropped users), `evolve --due` every night on the local provider, OpenAI prices applied.

    python bench/nightly_simulation.py [--users 1000] [--days 180] [--size 256]

Prints paid generations / milestones crossed (goal exactly 1.00) and the cost per active user per
month at the default model and quality, synchronously and through the Batch API.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import small_configs, synthetic_users

from mirror_cli.core import Mirror
from mirror_cli.models import Progress
from mirror_cli.pricing import estimate
from mirror_cli.settings import load_settings

KINDS = {"active": 0.55, "slowing": 0.30, "dropped": 0.15}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--size", type=int, default=256, help="render size (smaller is faster; counts are the same)")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="mirror-sim-"))
    cfg = small_configs(work, args.size)

    clock = {"t": datetime(2026, 1, 1, 2, 0, tzinfo=UTC)}
    core = Mirror(
        load_settings(
            {
                "data_dir": work / "data",
                "config_dir": cfg,
                "size": f"{args.size}x{args.size}",
                "concurrency": 4,
            }
        ),
        now=lambda: clock["t"],
    )
    users = synthetic_users(args.users, seed=args.seed)
    core.import_users(users)
    table = core.configs.stages
    kind = {u.id: rng.choices(list(KINDS), weights=list(KINDS.values()))[0] for u in users}
    drop_day = {u.id: rng.randint(5, 60) for u in users}
    days = {u.id: 0 for u in users}
    reached = {u.id: None for u in users}
    milestones = paid = 0
    active_in_month: dict[str, set[str]] = defaultdict(set)
    paid_in_month: dict[str, int] = defaultdict(int)
    t0 = time.perf_counter()
    for night in range(args.days):
        clock["t"] = datetime(2026, 1, 1, 2, 0, tzinfo=UTC) + timedelta(days=night)
        month = clock["t"].strftime("%Y-%m")
        for u in users:
            k = kind[u.id]
            p = {"active": 0.9, "slowing": max(0.1, 0.9 - night / 150), "dropped": 0.85}[k]
            if k == "dropped" and night > drop_day[u.id]:
                p = 0.0
            if night == 0 or rng.random() < p:
                if night > 0:
                    days[u.id] += 1
                active_in_month[month].add(u.id)
                core.store.set_progress(u.id, Progress(active_days=days[u.id], goals_completed=days[u.id] // 15))
            stage = table.stage_for_days(days[u.id])
            if stage != reached[u.id]:
                milestones += 1
                reached[u.id] = stage
        report = core.evolve(None, due=True)
        made = report.count("generated")
        paid += made
        paid_in_month[month] += made
        if night % 30 == 0:
            print(f"night {night:3d}: {made} generated, {paid} paid so far, {time.perf_counter() - t0:.0f}s")
    entry = core.configs.model(core.configs.models.default)
    quality = core.configs.style.quality
    # stage 1 is a text-to-image generation; later stages are edits with two references
    first = estimate(entry, quality, "1024x1024", 0)
    later = estimate(entry, quality, "1024x1024", 2)
    months = sorted(active_in_month)
    per_user = []
    for m in months:
        firsts = 1 if m == months[0] else 0
        n_first = len(users) if firsts else 0
        cost = n_first * first + (paid_in_month[m] - n_first) * later
        per_user.append(cost / max(1, len(active_in_month[m])))
    avg = sum(per_user) / len(per_user)
    print(f"users={args.users} days={args.days} mix={KINDS} seed={args.seed}")
    print(f"milestones crossed={milestones} paid generations={paid} ratio={paid / milestones:.2f} (goal 1.00)")
    print(f"model={core.configs.models.default} quality={quality}: ${first:.4f} first image, ${later:.4f} per edit")
    print(
        "cost per active user per month: " + ", ".join(f"{m} ${c:.3f}" for m, c in zip(months, per_user, strict=True))
    )
    print(f"average ${avg:.3f} synchronous, ${avg * entry.batch_discount:.3f} through the Batch API (target < $2)")
    print(f"wall {time.perf_counter() - t0:.0f}s")
    core.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

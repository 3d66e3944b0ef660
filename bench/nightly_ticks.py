"""The hourly nightly tick at scale: reads per tick and how a day's jobs spread over 24 ticks.

    python bench/nightly_ticks.py [--sqlite-users 100000] [--emulator-users 20000] [--due 0.05]
                                  [--no-emulator] [--start 2026-03-28T12:00:00Z]

Users are spread over 40 real time zones (half-hour and 45-minute offsets, +14 and -11 among
them), each with a first avatar; a share of them (--due) reached the next stage. Each user's
next_window is what `users import` stores. Then 24 hourly ticks run from --start (by default
across the EU spring-forward night): each tick is planned as `evolve --due --dry-run` plans it
(the selection query and the planner's reads, no renders), then its in-window users are marked
served as a real run marks them (their stage rank rises, their next window moves to the next
night). A 25th tick (the next day, everyone served) shows the reads of a tick with nobody due.

Printed per store: reads of each tick against the floor (the in-window due users: a tick must
read each of them once), reads per in-window due user above the constant of an empty tick, the
users of each tick (the spread), and that every due user was in window exactly once.
Targets: in window and due <= 3 reads per due user + a constant; nobody in window <= 20 reads.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import bulk_seed, first_avatar, small_configs

from mirror_cli.clock import PinnedClock, parse_instant
from mirror_cli.core import Mirror
from mirror_cli.models import AvatarRecord, Persona, Progress
from mirror_cli.nightly import epoch, zone
from mirror_cli.settings import load_settings

# Real zones with rough weights (where a journaling app's users might live).
ZONES: dict[str, float] = {
    "America/Los_Angeles": 6,
    "America/Denver": 2,
    "America/Chicago": 5,
    "America/New_York": 9,
    "America/Mexico_City": 3,
    "America/Bogota": 2,
    "America/Sao_Paulo": 5,
    "America/Argentina/Buenos_Aires": 2,
    "America/St_Johns": 0.3,
    "America/Halifax": 0.5,
    "Atlantic/Azores": 0.2,
    "Europe/London": 5,
    "Europe/Lisbon": 1,
    "Europe/Berlin": 6,
    "Europe/Paris": 4,
    "Europe/Madrid": 3,
    "Europe/Helsinki": 1,
    "Europe/Istanbul": 2,
    "Africa/Lagos": 2,
    "Africa/Nairobi": 1,
    "Africa/Johannesburg": 1,
    "Asia/Tehran": 1,
    "Asia/Dubai": 1,
    "Asia/Karachi": 2,
    "Asia/Kolkata": 8,
    "Asia/Kathmandu": 0.5,
    "Asia/Dhaka": 1,
    "Asia/Yangon": 0.3,
    "Asia/Bangkok": 2,
    "Asia/Jakarta": 3,
    "Asia/Shanghai": 4,
    "Asia/Manila": 2,
    "Asia/Seoul": 2,
    "Asia/Tokyo": 4,
    "Australia/Adelaide": 0.5,
    "Australia/Sydney": 2,
    "Australia/Lord_Howe": 0.05,
    "Pacific/Auckland": 1,
    "Pacific/Chatham": 0.05,
    "Pacific/Kiritimati": 0.05,
    "Pacific/Pago_Pago": 0.05,
}


def population(n: int, due_share: float, seed: int = 2026) -> list[tuple[Persona, AvatarRecord]]:
    rng = random.Random(seed)
    names, weights = list(ZONES), list(ZONES.values())
    out = []
    for i in range(n):
        uid = f"t{i:06d}"
        due = rng.random() < due_share
        p = Persona(
            id=uid, name="U", timezone=rng.choices(names, weights)[0], progress=Progress(active_days=8 if due else 3)
        )
        out.append((p, first_avatar(uid, i)))
    return out


def seed(core: Mirror, users: list[tuple[Persona, AvatarRecord]], now: datetime) -> None:
    """Each user with a first avatar and the next window `users import` stores for their zone."""
    window = core.configs.limits.nightly.window
    opens = {z: epoch(window.next_open(now, zone(z))) for z in ZONES}
    bulk_seed(core, users, now.isoformat(), lambda p: opens[p.timezone or ""])


def reads(core: Mirror) -> int:
    return core.store.op_counts(datetime.now(UTC).strftime("%Y-%m-%d")).get("reads", 0)


def run(kind: str, n: int, due_share: float, start: datetime, work: Path, cfg: Path) -> None:
    flags: dict[str, Any] = {"data_dir": work / f"{kind}-{n}", "config_dir": cfg, "size": "256x256"}
    if kind == "emulator":
        flags["store"] = "firebase"
        os.environ["MIRROR_FIREBASE_PROJECT"] = f"bench-{uuid.uuid4().hex[:8]}"
    clock = PinnedClock(start)
    core = Mirror(load_settings(flags), now=clock)
    users = population(n, due_share)
    due_total = sum(1 for p, _ in users if p.progress.active_days >= 7)
    zones = {p.id: p.timezone or "UTC" for p, _ in users}
    t = time.perf_counter()
    seed(core, users, start)
    print(f"\n{kind}: {n:,} users in {len(ZONES)} zones, {due_total:,} due; seeded in {time.perf_counter() - t:.0f} s")
    print(f"  {'tick (UTC)':17} {'in window':>9} {'reads':>7} {'floor':>6} {'reads/due':>9}  spread")
    tick = core.nightly_tick()
    served: dict[str, int] = {}
    rows = []
    t = time.perf_counter()
    for h in range(25):
        at = start + timedelta(hours=h)
        clock.set(at)
        r0 = reads(core)
        report = core.evolve(None, due=True, dry_run=True)  # selection + planning, no renders
        used = reads(core) - r0
        planned = sorted({o.user_id for o in report.outcomes})
        for uid in planned:  # what a real run leaves: the stage made, the next night's window
            served[uid] = served.get(uid, 0) + 1
            core.store.raise_latest_rank(uid, 1)
            core.store.set_next_window(uid, epoch(tick.window.after_served(at, zone(zones[uid]))))
        rows.append((at, len(planned), used))
    elapsed = time.perf_counter() - t
    quiet = rows[-1][2]  # the next day's tick: everyone served, nobody due
    top = max(r[1] for r in rows) or 1
    for at, k, used in rows:
        per = f"{(used - quiet) / k:9.2f}" if k else f"{'-':>9}"
        bar = "#" * round(40 * k / top)
        print(f"  {at:%Y-%m-%d %H:%M}  {k:>9} {used:>7} {k:>6} {per}  {bar}")
    busy = [(k, used) for _, k, used in rows[:-1] if k]
    worst = max(((used - quiet) / k for k, used in busy), default=0.0)
    twice = sum(1 for v in served.values() if v > 1)
    print(
        f"  every due user in window once: {len(served) == due_total and twice == 0} "
        f"({len(served):,} of {due_total:,}; {twice} twice)"
    )
    print(
        f"  in window and due: at most {worst:.2f} reads per due user above the constant {quiet} "
        f"(target <= 3 + constant); nobody due: {quiet} reads (target <= 20)"
    )
    busiest = max(r[1] for r in rows)
    print(f"  busiest tick {busiest:,} users = {busiest / max(due_total, 1):.1%} of the day's due users")
    print(f"  25 ticks in {elapsed:.0f} s")
    core.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sqlite-users", type=int, default=100_000)
    ap.add_argument("--emulator-users", type=int, default=20_000)
    ap.add_argument("--due", type=float, default=0.05, help="share of users who reached the next stage")
    ap.add_argument("--no-emulator", action="store_true")
    ap.add_argument("--start", default="2026-03-28T12:00:00Z", help="first tick (default: before the EU DST night)")
    args = ap.parse_args()
    start = parse_instant(args.start)
    work = Path(tempfile.mkdtemp(prefix="mirror-ticks-"))
    cfg = small_configs(work)
    try:
        run("sqlite", args.sqlite_users, args.due, start, work, cfg)
        if not args.no_emulator:
            import emulators

            envs = emulators.start()
            try:
                os.environ["FIRESTORE_EMULATOR_HOST"] = envs.firestore.host
                os.environ["STORAGE_EMULATOR_HOST"] = envs.storage_url
                os.environ["MIRROR_FIREBASE_BUCKET"] = envs.new_namespace()[1]
                run("emulator", args.emulator_users, args.due, start, work, cfg)
            finally:
                envs.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

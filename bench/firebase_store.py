"""Firebase store at scale, on the official Firestore emulator and on SQLite.

    python bench/firebase_store.py [reads] [hot] [latency] [usage] [--big 100000] [--emulator-big]

- reads:   documents read and written by one nightly `evolve --due` at 1,000 and --big users
           (5 % due, and nobody due), each user with a first avatar. The floor is the due users
           themselves (a run must read each due profile once). 1,000 users run for real (local
           renderer); --big with 5 % due is planned (--dry-run: the same reads, no renders) and
           with nobody due runs for real. The emulator takes --big only with --emulator-big.
- hot:     a 300-job run split over 8 shard processes (loopback OpenAI server, 1 s per image),
           every Firestore write logged: writes per second on the busiest document.
- latency: 20 due users at concurrency 8 with 50 ms added to every store RPC (a TCP delay proxy
           in front of both emulators) against the local store; the ratio of wall times.
- usage:   `mirror usage` peak RSS with 100,000 and 1,000,000 ledger events (SQLite), against
           the RSS of a process that only opens the same store (the floor).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT, bulk_seed, first_avatar, small_configs, start_server

from mirror_cli.core import Mirror
from mirror_cli.models import AvatarRecord, LedgerEvent, Persona, Progress, TokenUsage
from mirror_cli.settings import load_settings

TODAY = datetime.now(UTC).strftime("%Y-%m-%d")


def configs(work: Path, size: int = 256, **limits: Any) -> Path:
    cfg = small_configs(work, size)
    lim = yaml.safe_load((cfg / "limits.yaml").read_text())
    lim.update({"system_daily": 100_000, "per_user_daily": 100, "monthly_budget_usd": 100_000, "rate_limits": {}})
    lim.update(limits)
    (cfg / "limits.yaml").write_text(yaml.safe_dump(lim))
    return cfg


def seeded_user(i: int, due: bool) -> tuple[Persona, AvatarRecord]:
    uid = f"b{i:06d}"
    return Persona(id=uid, name="U", progress=Progress(active_days=8 if due else 3)), first_avatar(uid, i)


def seed(core: Mirror, n: int, due_every: int | None) -> int:
    """n users with a first avatar; every due_every-th one reached the next stage."""
    due = [due_every is not None and i % due_every == 0 for i in range(n)]
    bulk_seed(core, [seeded_user(i, due[i]) for i in range(n)], datetime.now(UTC).isoformat())
    return sum(due)


def counts(core: Mirror) -> tuple[int, int]:
    ops = core.store.op_counts(TODAY)
    return ops.get("reads", 0), ops.get("writes", 0)


def reads_row(kind: str, n: int, due_every: int | None, work: Path, cfg: Path, dry: bool) -> None:
    flags: dict[str, Any] = {"data_dir": work / f"{kind}-{n}-{due_every}", "config_dir": cfg, "size": "256x256"}
    if kind == "emulator":
        flags["store"] = "firebase"
        os.environ["MIRROR_FIREBASE_PROJECT"] = f"bench-{uuid.uuid4().hex[:8]}"
    core = Mirror(load_settings(flags))
    t = time.perf_counter()
    due = seed(core, n, due_every)
    seeded_s = time.perf_counter() - t
    r0, w0 = counts(core)
    t = time.perf_counter()
    report = core.evolve(None, due=True, dry_run=dry, any_hour=True)
    run_s = time.perf_counter() - t
    r1, w1 = counts(core)
    reads, writes = r1 - r0, w1 - w0
    jobs = len(report.outcomes)
    per_due = f"{reads / due:5.2f}" if due else "    -"
    mode = "plan (dry run)" if dry else "run"
    print(
        f"  {kind:8} {n:>7,} users  {due:>5} due  {mode:14} {jobs:>5} jobs  reads {reads:>6}  writes {writes:>6}  "
        f"reads/due {per_due}  floor {due:>5}  ({run_s:5.1f} s; seeded in {seeded_s:4.1f} s)"
    )
    core.close()


def bench_reads(big: int, emulator_big: bool) -> None:
    print("reads and writes of one nightly `evolve --due` (every user has a first avatar; 5 % reached the next stage)")
    work = Path(tempfile.mkdtemp(prefix="mirror-fb-bench-"))
    cfg = configs(work)
    for kind in ("sqlite", "emulator"):
        for n in (1000, big):
            if kind == "emulator" and n == big and not emulator_big:
                print(f"  {kind:8} {n:>7,} users  (skipped: pass --emulator-big; seeding takes minutes)")
                continue
            reads_row(kind if kind == "emulator" else "local", n, 20, work, cfg, dry=n > 1000)
            reads_row(kind if kind == "emulator" else "local", n, None, work, cfg, dry=False)
    shutil.rmtree(work, ignore_errors=True)


def bench_hot() -> None:
    proc, url = start_server(latency=1.0, images_per_minute=None)
    work = Path(tempfile.mkdtemp(prefix="mirror-fb-hot-"))
    cfg = configs(work)
    os.environ["MIRROR_FIREBASE_PROJECT"] = f"bench-{uuid.uuid4().hex[:8]}"
    core = Mirror(load_settings({"store": "firebase", "config_dir": cfg, "data_dir": work / "d"}))
    core.import_users([Persona(id=f"h{i:03d}", name="H") for i in range(300)])
    core.close()
    log = work / "writes.log"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-bench-abcdefghijklmnop",
        "MIRROR_STORE": "firebase",
        "MIRROR_DATA_DIR": str(work / "d"),
        "MIRROR_CONFIG_DIR": str(cfg),
        "MIRROR_PROVIDER": "openai",
        "MIRROR_BASE_URL": url,
    }
    writer = ROOT / "tests" / "firestore_write_log.py"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(writer),
                str(log),
                "evolve",
                "--due",
                "--any-hour",
                "--shard",
                f"{i}/8",
                "--concurrency",
                "2",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(8)
    ]
    for p in procs:
        p.wait(900)
    proc.terminate()
    lines = [line.split(" ", 1) for line in log.read_text().splitlines()]
    times = [float(t) for t, _ in lines]
    elapsed = max(times) - min(times)
    per_doc: dict[str, int] = {}
    for _, path in lines:
        per_doc[path] = per_doc.get(path, 0) + 1
    hottest = max(per_doc, key=per_doc.__getitem__)
    print(
        f"8 shard processes, 300 jobs: {len(lines)} writes to {len(per_doc)} documents in {elapsed:.1f} s; "
        f"busiest document {hottest}: {per_doc[hottest]} writes = {per_doc[hottest] / elapsed:.2f} writes/s "
        f"(Firestore's sustained limit: 1/s)"
    )
    shutil.rmtree(work, ignore_errors=True)


def bench_latency(emus: Any, delay_s: float = 0.05, image_s: float = 1.0) -> None:
    from delay_proxy import DelayProxy

    proc, url = start_server(latency=image_s, images_per_minute=None)
    os.environ["OPENAI_API_KEY"] = "sk-bench-abcdefghijklmnop"
    work = Path(tempfile.mkdtemp(prefix="mirror-fb-lat-"))
    cfg = configs(work)
    timings: dict[str, float] = {}
    for kind in ("local", "firebase"):
        flags: dict[str, Any] = {"config_dir": cfg, "data_dir": work / kind, "provider": "openai", "base_url": url}
        flags |= {"concurrency": 8}
        proxies: list[DelayProxy] = []
        if kind == "firebase":
            fs, gcs = DelayProxy(emus.firestore.host, delay_s), DelayProxy(emus.storage_url, delay_s)
            proxies = [fs, gcs]
            os.environ["FIRESTORE_EMULATOR_HOST"] = fs.host
            os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs.host}"
            os.environ["MIRROR_FIREBASE_PROJECT"] = f"bench-{uuid.uuid4().hex[:8]}"
            flags["store"] = "firebase"
        core = Mirror(load_settings(flags))
        core.import_users([Persona(id=f"l{i:02d}", name="L") for i in range(20)])
        t = time.perf_counter()
        report = core.evolve(None, due=True, any_hour=True)
        timings[kind] = time.perf_counter() - t
        assert report.count("generated") == 20, report.summary()
        core.close()
        for p in proxies:
            p.stop()
    proc.terminate()
    ratio = timings["firebase"] / timings["local"]
    print(
        f"20 due users, concurrency 8, {image_s:.1f} s per image: local store {timings['local']:.2f} s, "
        f"firebase with {delay_s * 1000:.0f} ms per RPC {timings['firebase']:.2f} s, ratio {ratio:.2f}"
    )
    shutil.rmtree(work, ignore_errors=True)


USAGE_CHILD = """
import sys, time
from mirror_cli.core import Mirror
from mirror_cli.settings import load_settings
core = Mirror(load_settings({"data_dir": sys.argv[1], "config_dir": sys.argv[2]}))
t = time.perf_counter()
if sys.argv[3] == "usage":
    f = core.usage()
    done = f"{f.generations} generations, ${f.cost_usd:.2f}"
else:
    core.store.op_counts("2026-01-01")
    done = "opened"
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(done, round(time.perf_counter() - t, 2), hwm // 1024)
"""


def bench_usage() -> None:
    work = Path(tempfile.mkdtemp(prefix="mirror-fb-usage-"))
    cfg = configs(work)
    core = Mirror(load_settings({"data_dir": work / "d", "config_dir": cfg}))
    db = core.store._open()  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    written = 0
    for target in (100_000, 1_000_000):
        db.execute("BEGIN")
        while written < target:
            e = LedgerEvent(
                ts=now.replace(hour=written % 24, minute=written % 60, second=0, day=1 + written % 27),
                user_id=f"u{written % 5000}",
                kind="generated",
                cost_usd=0.04,
                model="gpt-image-2",
                usage=TokenUsage(output_image_tokens=1056),
            )
            db.execute(
                "INSERT INTO ledger(event_id, ts, uid, kind, event) VALUES (?,?,?,?,?)",
                (f"e{written}", e.ts.isoformat(), e.user_id, e.kind, e.model_dump_json()),
            )
            written += 1
        db.execute("COMMIT")
        rows = {}
        for what in ("floor", "usage"):
            out = subprocess.run(
                [sys.executable, "-c", USAGE_CHILD, str(work / "d"), str(cfg), what],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            rows[what] = (out[-2], out[-1])
        print(
            f"usage over {target:>9,} ledger events: peak RSS {rows['usage'][1]} MB in {rows['usage'][0]} s "
            f"(floor, a process that opens the store: {rows['floor'][1]} MB)"
        )
    core.close()
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parts", nargs="*", default=["reads", "hot", "latency", "usage"])
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--emulator-big", action="store_true")
    args = ap.parse_args()
    import emulators

    needs_emulators = {"reads", "hot", "latency"} & set(args.parts)
    emus = emulators.start() if needs_emulators else None
    try:
        if emus is not None:
            os.environ["FIRESTORE_EMULATOR_HOST"] = emus.firestore.host
            os.environ["STORAGE_EMULATOR_HOST"] = emus.storage_url
            os.environ["MIRROR_FIREBASE_BUCKET"] = emus.new_namespace()[1]
        if "reads" in args.parts:
            bench_reads(args.big, args.emulator_big)
        if "hot" in args.parts:
            bench_hot()
        if "latency" in args.parts:
            bench_latency(emus)
        if "usage" in args.parts:
            bench_usage()
    finally:
        if emus is not None:
            emus.stop()
    print(f"(peak RSS of this bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB)")


if __name__ == "__main__":
    main()

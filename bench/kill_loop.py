"""Spend under a crash loop: `evolve --due` against the loopback OpenAI server, killed with SIGKILL
at random moments, resumed until done; then what the server billed against what the tool booked.

    python bench/kill_loop.py [--users 16] [--kills 5] [--seeds 1 2 3] [--latency 0.25]

For each seed, without and with blank answers (a fifth of the images blank: the quality gate's
reinforced retry, a second paid request), prints: kills, requests in flight at a kill, server
billed (the server's own ledger, priced from the usage it returned), the tool's confirmed spend and
its may-have-billed spend, and their ratio. The goal: ratio >= 1.00 (never under the server) and
<= 1.10 (may-have-billed booked once per request sent and never answered, not per crash).
Then the reads per due user of one real nightly run (the loopback OpenAI server) on the local
store and on the official Firestore emulator (--read-stores; --no-kills for the reads alone).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT, synthetic_users
from openai_server import FakeOpenAI

from mirror_cli.core import Mirror
from mirror_cli.resources import default_config_dir
from mirror_cli.settings import load_settings

PRICES = {"text_in": 5.0, "image_in": 8.0, "image_out": 30.0}  # gpt-image-2, USD per 1M tokens


def _configs(work: Path) -> Path:
    import shutil

    cfg = work / "configs"
    shutil.copytree(default_config_dir(), cfg)
    limits = yaml.safe_load((cfg / "limits.yaml").read_text())
    limits.update({"system_daily": 10_000, "per_user_daily": 100, "monthly_budget_usd": 1000, "rate_limits": {}})
    limits["retry"] = {"max_attempts": 6, "base_delay_s": 0.01, "max_delay_s": 0.05, "request_timeout_s": 5}
    limits["claims"] = {"lease_s": 30, "poll_s": 0.2, "wait_s": 300}
    (cfg / "limits.yaml").write_text(yaml.safe_dump(limits))
    return cfg


def _cost(entry: dict[str, Any]) -> float:
    u = entry["usage"]
    return (
        u["input_tokens_details"]["text_tokens"] * PRICES["text_in"]
        + u["input_tokens_details"]["image_tokens"] * PRICES["image_in"]
        + u["output_tokens"] * PRICES["image_out"]
    ) / 1e6


def _mirror(data: Path, cfg: Path, url: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-bench-abcdefghijklmnop",
        "MIRROR_DATA_DIR": str(data),
        "MIRROR_CONFIG_DIR": str(cfg),
        "MIRROR_PROVIDER": "openai",
        "MIRROR_BASE_URL": url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    exe = [sys.executable, "-m", "mirror_cli", *args]
    return subprocess.Popen(exe, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _kept(spool_root: Path) -> set[str]:
    """The request ids of the paid answers a killed process left in its spool (header lines, read
    as they are on disk)."""
    heads = []
    for entry in spool_root.glob("*/*.spool"):
        with entry.open("rb") as fh:
            heads.append(json.loads(fh.readline() or b"{}"))
    return {h["request_id"] for h in heads if h.get("request_id")}


def kill_loop(users: int, kills_wanted: int, seed: int, blanks: bool, latency: float) -> dict[str, Any]:
    server = FakeOpenAI(latency=latency).start()
    if blanks:
        server.bad_random = (random.Random(seed), 0.2, "blank")
    rng = random.Random(seed)
    kill_times: list[float] = []
    killed: set[str] = set()  # the server's tags of the processes killed
    kept_at_kills: set[str] = set()  # request ids in the spool right after a kill
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg, data = _configs(work), work / "data"
        core = Mirror(load_settings({"data_dir": data, "config_dir": cfg}))
        core.import_users(synthetic_users(users, seed=seed))
        core.close()
        run_id = None
        for attempt in range(kills_wanted + 10):
            args = ["evolve", "--due", "--any-hour", "--json", "--concurrency", "2"]
            proc = _mirror(
                data, cfg, server.client_url(f"p{attempt}"), *args, *(["--resume", run_id] if run_id else [])
            )
            if len(kill_times) < kills_wanted:
                start, deadline = len(server.requests), time.monotonic() + 60
                while len(server.requests) == start and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.1 + rng.random() * 1.2)
                if proc.poll() is None:
                    kill_times.append(time.monotonic())
                    proc.kill()
                    proc.wait()
                    killed.add(f"p{attempt}")
                    kept_at_kills |= _kept(data / "spool")
                    if run_id is None:
                        check = Mirror(load_settings({"data_dir": data, "config_dir": cfg}))
                        run_id = check.runs()[0].id
                        check.close()
                    continue
            proc.communicate(timeout=900)
            break
        check = Mirror(load_settings({"data_dir": data, "config_dir": cfg}))
        events = check.store.events()
        check.close()
    server.stop()
    ledger = server.ledger
    received = kept_at_kills | {e.request_id for e in events if e.request_id}
    # sent by a killed process that never kept the answer (the server's tag says who sent it)
    in_flight = [e for e in ledger if e["client"] in killed and e["request_id"] not in received]
    confirmed = sum(e.cost_usd for e in events if e.kind in ("generated", "spool_ingest"))
    maybe = sum(e.cost_usd for e in events if e.kind == "may_have_billed")
    billed = sum(_cost(e) for e in ledger)
    return {
        "kills": len(kill_times),
        "in_flight": len(in_flight),
        "billed": billed,
        "confirmed": confirmed,
        "maybe": maybe,
        "ratio": (confirmed + maybe) / billed if billed else float("nan"),
    }


def reads_per_due_user(users: int, store: str = "local") -> tuple[int, int, int]:
    """One real nightly run (the loopback OpenAI server: claims, reservations, the cache, the
    anchor): the store's own read count, per due user. Every user gets a first avatar in a first
    run; then half of them reach the next stage and the measured run serves them. Returns its
    reads, the due users it served, and the reads of the same run with nobody due (the constant)."""
    server = FakeOpenAI().start()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-abcdefghijklmnop")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = _configs(Path(tmp))
            flags = {"data_dir": Path(tmp) / "d", "config_dir": cfg, "store": store}
            flags |= {"provider": "openai", "base_url": server.url}
            core = Mirror(load_settings(flags))
            people = synthetic_users(users, seed=3)
            core.import_users(people)
            core.evolve(None, due=True, any_hour=True)  # everyone's first avatar
            for p in people[::2]:
                core.store.set_progress(p.id, p.progress.model_copy(update={"active_days": 8}))
            core.close()
            core = Mirror(load_settings(flags))
            day = core.now().strftime("%Y-%m-%d")
            before = core.store.op_counts(day).get("reads", 0)
            report = core.evolve(None, due=True, any_hour=True)
            core.close()
            core = Mirror(load_settings(flags))  # the counts are flushed when a core closes
            after = core.store.op_counts(day).get("reads", 0)
            core.evolve(None, due=True, any_hour=True)  # nobody due now: the constant
            core.close()
            core = Mirror(load_settings(flags))
            constant = core.store.op_counts(day).get("reads", 0) - after
            core.close()
            due = sum(1 for o in report.outcomes if o.status == "generated")
    finally:
        server.stop()
    return after - before, due, constant


def kill_loops(args: argparse.Namespace) -> None:
    print(f"kill loop: {args.users} users, {args.kills} SIGKILLs per run, server latency {args.latency}s")
    print("  seed  blanks  kills  in_flight  server_billed  tool_confirmed  may_have_billed  ratio")
    for seed in args.seeds:
        for blanks in (False, True):
            r = kill_loop(args.users, args.kills, seed, blanks, args.latency)
            print(
                f"  {seed:4}  {'yes' if blanks else 'no':>6}  {r['kills']:5}  {r['in_flight']:9}  "
                f"${r['billed']:12.4f}  ${r['confirmed']:13.4f}  ${r['maybe']:14.4f}  {r['ratio']:5.3f}",
                flush=True,
            )


def _emulators() -> Any:
    """The official Firestore emulator and the storage emulator, the store pointed at them."""
    import emulators

    emus = emulators.start()
    os.environ["FIRESTORE_EMULATOR_HOST"] = emus.firestore.host
    os.environ["STORAGE_EMULATOR_HOST"] = emus.storage_url
    project, bucket = emus.new_namespace()
    os.environ["MIRROR_FIREBASE_PROJECT"] = project
    os.environ["MIRROR_FIREBASE_BUCKET"] = bucket
    return emus


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--read-users", type=int, default=200)
    ap.add_argument("--read-stores", nargs="+", default=["local", "firebase"], choices=["local", "firebase"])
    ap.add_argument("--no-kills", action="store_true", help="only the reads of a real nightly run")
    args = ap.parse_args()
    if not args.no_kills:
        kill_loops(args)
    print("reads of one real nightly run (half the users due; goal <= 3 per due user + a constant):")
    for store in args.read_stores:
        emus = _emulators() if store == "firebase" else None
        try:
            reads, due, constant = reads_per_due_user(args.read_users, store)
        finally:
            if emus is not None:
                emus.stop()
        note = "Firestore documents" if store == "firebase" else "SQL reads counted by the local store"
        print(
            f"  {store:8} {reads:5} reads for {due} due users = {reads / due:.2f} per due user; "
            f"{constant} with nobody due: ({reads} - {constant}) / {due} = {(reads - constant) / due:.2f} "
            f"per due user above the constant ({note})",
            flush=True,
        )


if __name__ == "__main__":
    main()

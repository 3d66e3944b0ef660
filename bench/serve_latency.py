"""Latency of `mirror serve` on loopback at 100 concurrent clients, against a floor.

Three processes: the server (`mirror serve`, a real uvicorn), the client (httpx, async, one
connection per simulated client), and the Firebase Auth emulator that issued the users' ID tokens.
Measured, each with every client sending requests back to back:

- floor: a bare FastAPI app on the same uvicorn stack answering a constant (measured in this run:
  what the machine, uvicorn and the client cost with no application at all);
- GET /api/v1/avatar/user/{uid}: a user's avatars with signed URLs (token verified, store read);
- POST /api/v1/avatar/generate, cached: the app's request for an avatar that already exists.

Each simulated client is a different signed-in user. The store is the local one (SQLite) and the
renderer the offline one: this measures the server, not Firestore or OpenAI.

    .venv/bin/python bench/serve_latency.py [--clients 100] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, synthetic_users

PROGRESS = {"active_days": 31, "goals_completed": 3}


# ------------------------------------------------------------------------------------ floor
def floor_server(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/const")
    async def const() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ----------------------------------------------------------------------------------- client
async def _setup(spec: dict[str, Any]) -> dict[str, Any]:
    """Each user's request once, four at a time, each until it answers 200 (polling a 202)."""
    import httpx

    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=spec["url"], timeout=120) as client:

        async def once(user: dict[str, Any]) -> None:
            headers = {"Authorization": f"Bearer {user['token']}"}
            async with sem:
                r = await client.post(spec["path"], headers=headers, json=user["body"])
                while r.status_code == 202:
                    await asyncio.sleep(0.5)
                    r = await client.get(r.json()["poll_url"], headers=headers)
            if r.status_code != 200:
                errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1

        await asyncio.gather(*(once(u) for u in spec["users"]))
    return {"errors": errors}


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    if spec.get("setup"):
        return await _setup(spec)

    url, method, path = spec["url"], spec["method"], spec["path"]
    users: list[dict[str, Any]] = spec["users"]
    clients, total = spec["clients"], spec["requests"]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    interval = float(spec.get("interval", 0.0))  # 0: back to back (saturation); else seconds between sends
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(user: dict[str, Any], record: bool) -> None:
            headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
            p = path.format(uid=user.get("uid", ""))
            t0 = time.perf_counter()
            try:
                if method == "GET":
                    r = await client.get(p, headers=headers)
                else:
                    r = await client.post(p, headers=headers, json=user["body"])
            except httpx.TransportError as exc:  # counted, not fatal: a loaded machine drops a few
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            elif record:
                latencies.append(dt)

        async def worker(i: int) -> None:
            user = users[i % len(users)]
            next_at = time.perf_counter() + interval * i / clients  # paced clients are spread evenly
            for _ in counter:
                if interval:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval
                await one(user, True)

        # warm-up: every client once (connections opened, tokens verified and cached)
        await asyncio.gather(*(one(users[i % len(users)], False) for i in range(clients)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "n": len(latencies),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "rps": len(latencies) / elapsed,
        "errors": errors,
    }


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """The client runs in a process of its own, so it does not share a core's GIL with the server."""
    out = subprocess.run(
        [sys.executable, __file__, "--client"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"the client failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# ----------------------------------------------------------------------------------- server
def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_up(url: str, proc: subprocess.Popen[Any], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server did not start: {log.read_text()[-1500:]}")
        time.sleep(0.1)


def start_serve(port: int, data_dir: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[Any], str]:
    """`mirror serve` on ``port`` in a child process (its stderr in ``log``); its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--requests", type=int, default=2000, help="measured requests per scenario")
    ap.add_argument("--rate", type=float, default=1.0, help="requests per second per client in the paced rows")
    args = ap.parse_args()

    from firebase_auth import AuthEmulator, free_port

    from mirror_cli.stores.local import LocalStore

    work = Path(tempfile.mkdtemp(prefix="mirror-serve-bench-"))
    procs: list[subprocess.Popen[Any]] = []
    emu = AuthEmulator()
    try:
        # users: signed up in the Auth emulator, profiles in the store
        personas = synthetic_users(args.clients)
        store = LocalStore(root=work / "data")
        users = []
        for p in personas:
            uid, token = emu.sign_up()
            store.put_user(p.model_copy(update={"id": uid}))
            body = {"user_id": uid, "evolution_stage": "month", "progress_metrics": PROGRESS}
            users.append({"uid": uid, "token": token, "body": body})
        store.close()

        env = {
            **os.environ,
            "FIREBASE_AUTH_EMULATOR_HOST": emu.host,
            "MIRROR_AUTH_EMULATOR": "1",
            "MIRROR_FIREBASE_PROJECT": emu.project,
            "MIRROR_SERVE_RATE_PER_MINUTE": "1000000",
            "MIRROR_CONFIG_DIR": str(ROOT / "configs") if (ROOT / "configs").exists() else "",
        }
        env = {k: v for k, v in env.items() if v != ""}
        port, floor_port = free_port(), free_port()
        log = work / "serve.log"
        server, url = start_serve(port, work / "data", env, log)
        procs.append(server)
        floor = subprocess.Popen([sys.executable, __file__, "--floor", str(floor_port)], stderr=subprocess.DEVNULL)
        procs.append(floor)
        floor_url = f"http://127.0.0.1:{floor_port}"
        wait_up(url + "/api/v1/healthz", server, log)
        wait_up(floor_url + "/const", floor, log)

        # every user's first avatar is made once (offline renderer): later generates are cache hits
        t0 = time.perf_counter()
        made = run_client(
            {"url": url, "method": "POST", "path": "/api/v1/avatar/generate", "users": users, "setup": True}
        )
        print(
            f"setup: {len(users)} users, first avatars made in {time.perf_counter() - t0:.1f} s "
            f"({made['errors'] or 'no errors'})",
            file=sys.stderr,
        )

        common = {"users": users, "clients": args.clients, "requests": args.requests}
        scenarios = [
            ("floor: bare FastAPI constant", {"url": floor_url, "method": "GET", "path": "/const"}, floor),
            ("GET /avatar/user/{id}", {"url": url, "method": "GET", "path": "/api/v1/avatar/user/{uid}"}, server),
            (
                "POST /avatar/generate (cached)",
                {"url": url, "method": "POST", "path": "/api/v1/avatar/generate"},
                server,
            ),
        ]
        load = os.getloadavg()[0]
        print(
            f"mirror serve on loopback: {args.clients} concurrent clients (one signed-in user each), "
            f"{args.requests} measured requests per row; {os.cpu_count()} CPUs, load average {load:.1f} at start"
        )
        for mode, interval in (
            ("back to back (saturation)", 0.0),
            (f"paced, {args.rate:g} req/s per client", 1 / args.rate),
        ):
            rows = []
            for name, spec, proc in scenarios:
                try:
                    before = cpu_s(proc.pid)
                    result = run_client({**spec, **common, "interval": interval})
                    # the server's own CPU per request: what contention on a shared machine hides
                    result["cpu_ms"] = (cpu_s(proc.pid) - before) * 1000 / max(1, result["n"] + args.clients)
                    rows.append((name, result))
                except SystemExit:
                    print(f"{name} failed; server log:\n{log.read_text()[-3000:]}", file=sys.stderr)
                    raise
            floor_p50, floor_p95 = rows[0][1]["p50_ms"], rows[0][1]["p95_ms"]
            print(f"\n{mode}")
            print(
                f" {'scenario':32} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'p50-floor':>10} {'p95-floor':>10}"
                f" {'server CPU ms/req':>18} errors"
            )
            for name, r in rows:
                print(
                    f" {name:32} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['rps']:8.0f} "
                    f"{r['p50_ms'] - floor_p50:10.1f} {r['p95_ms'] - floor_p95:10.1f} {r['cpu_ms']:18.2f}"
                    f" {r['errors'] or '-'}"
                )
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for p in procs:
            stop(p)
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        print(json.dumps(asyncio.run(_load(json.loads(sys.stdin.read())))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--floor":
        floor_server(int(sys.argv[2]))
    else:
        main()

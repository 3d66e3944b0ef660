"""Latency and CPU of `mirror serve` on loopback at 50 and 100 concurrent clients, against floors
measured in the same run, on the local store (SQLite) and on the Firestore + Storage emulators.

Processes: the server (`mirror serve`, a real uvicorn), two floor servers, the client (httpx,
async, one connection per simulated client), the Firebase Auth emulator that issued the users' ID
tokens (and, for --store firebase, the Firestore and Storage emulators). Each row has every client
sending requests back to back:

- floor, constant: a bare FastAPI app on the same uvicorn stack answering a constant (what the
  machine, uvicorn and the client cost with no application at all);
- floor, one store read: a minimal FastAPI app reading the client's user once from the same
  store, through the same thread pool as the server (what one store read costs);
- GET /api/v1/avatar/user/{uid}: a user's avatars with signed URLs (token verified, store read);
- POST /api/v1/avatar/generate, cached: the app's request for an avatar that already exists.

Each simulated client is a different signed-in user; the renderer is the offline one (256 px).
Printed per row: p50/p95, requests per second, and the server's CPU per request (its process
CPU time over the row / the requests it answered). Targets (issue #20): cached generate p95 <= 3x
the store-read floor's p95; server CPU per cached generate <= 2x the list's.

    .venv/bin/python bench/serve_latency.py [--store local|firebase] [--clients 50,100] [--requests 800] [--paced]

Each store is a run of its own (3-4 minutes on 2 busy shared cores; the emulators start in it).
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

from _common import small_configs, synthetic_users

PROGRESS = {"active_days": 31, "goals_completed": 3}


# ------------------------------------------------------------------------------------ floor
def floor_server(port: int) -> None:
    """The two floors in one process: a constant, and one read of a user from the bench's store
    (settings from the same MIRROR_* environment as the server, the same kind of thread pool)."""
    import uvicorn
    from fastapi import FastAPI

    from mirror_cli.settings import load_settings
    from mirror_cli.stores.base import get_store
    from mirror_cli.stores.calls import StoreCalls

    settings = load_settings()
    store = get_store(settings.store, settings)
    calls = StoreCalls()
    app = FastAPI()

    @app.get("/const")
    async def const() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/read/{uid}")
    async def read(uid: str) -> dict[str, str | None]:
        persona = await calls(store.get_user, uid)
        return {"id": persona.id if persona else None}

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


def service_account(work: Path, project: str) -> Path:
    """A throwaway service-account key: Storage URLs are real V4 signatures (local RSA)."""
    from serve_support import service_account as make

    return make(work, project)


def environment(store: str, work: Path, emu: Any) -> tuple[dict[str, str], Any]:
    """The server's environment for ``store`` (and the Firestore/Storage emulators it started)."""
    env = {
        **os.environ,
        "FIREBASE_AUTH_EMULATOR_HOST": emu.host,
        "MIRROR_AUTH_EMULATOR": "1",
        "MIRROR_FIREBASE_PROJECT": emu.project,
        "MIRROR_SERVE_RATE_PER_MINUTE": "1000000",
        "MIRROR_CONFIG_DIR": str(small_configs(work)),
        "MIRROR_SIZE": "256x256",
        "MIRROR_DATA_DIR": str(work / "data"),
        "MIRROR_STORE": store,
    }
    emulators = None
    if store == "firebase":
        import emulators as emu_module

        emulators = emu_module.start()
        _, bucket = emulators.new_namespace()
        env.update(
            {
                "FIRESTORE_EMULATOR_HOST": emulators.firestore.host,
                "STORAGE_EMULATOR_HOST": emulators.storage_url,
                "MIRROR_FIREBASE_BUCKET": bucket,
                "GOOGLE_APPLICATION_CREDENTIALS": str(service_account(work, emu.project)),
            }
        )
    return env, emulators


def seed_users(env: dict[str, str], emu: Any, n: int) -> list[dict[str, Any]]:
    """``n`` users signed up in the Auth emulator, their profiles in the bench's store."""
    from mirror_cli.settings import load_settings
    from mirror_cli.stores.base import get_store

    old = dict(os.environ)
    os.environ.update(env)
    try:
        settings = load_settings()
        store = get_store(settings.store, settings)
        users = []
        for p in synthetic_users(n):
            uid, token = emu.sign_up()
            store.put_user(p.model_copy(update={"id": uid}))
            body = {"user_id": uid, "evolution_stage": "month", "progress_metrics": PROGRESS}
            users.append({"uid": uid, "token": token, "body": body})
        store.close()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return users


def measure(scenarios: list[tuple[str, dict[str, Any], Any]], common: dict[str, Any], log: Path) -> list[Any]:
    rows = []
    for name, spec, proc in scenarios:
        try:
            before = cpu_s(proc.pid)
            result = run_client({**spec, **common})
            # the server's own CPU per request (warm-up included): what contention hides
            result["cpu_ms"] = (cpu_s(proc.pid) - before) * 1000 / max(1, result["n"] + common["clients"])
            rows.append((name, result))
        except SystemExit:
            print(f"{name} failed; server log:\n{log.read_text()[-3000:]}", file=sys.stderr)
            raise
    return rows


def report(mode: str, rows: list[Any]) -> None:
    by = dict(rows)
    floor = by["floor: one store read"]
    print(f"\n{mode}")
    print(
        f" {'scenario':32} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8} {'p95/floor':>10} {'server CPU ms/req':>18} errors"
    )
    for name, r in rows:
        print(
            f" {name:32} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['rps']:8.0f} {r['p95_ms'] / floor['p95_ms']:10.2f}"
            f" {r['cpu_ms']:18.2f} {r['errors'] or '-'}"
        )
    cached, listed = by["POST /avatar/generate (cached)"], by["GET /avatar/user/{id}"]
    p95_ratio, cpu_ratio = cached["p95_ms"] / floor["p95_ms"], cached["cpu_ms"] / listed["cpu_ms"]
    met = {True: "met", False: "MISSED"}
    print(
        f" targets: cached p95 / store-read floor p95 = {p95_ratio:.2f} (<= 3: {met[p95_ratio <= 3]});"
        f" server CPU per request, cached / list = {cpu_ratio:.2f} (<= 2: {met[cpu_ratio <= 2]})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", choices=["local", "firebase"], default="local")
    ap.add_argument("--clients", default="50,100", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--requests", type=int, default=800, help="measured requests per row")
    ap.add_argument("--paced", action="store_true", help="also rows paced at --rate requests/s per client")
    ap.add_argument("--rate", type=float, default=1.0, help="requests per second per client in the paced rows")
    args = ap.parse_args()
    counts = [int(c) for c in args.clients.split(",")]

    from firebase_auth import AuthEmulator, free_port

    work = Path(tempfile.mkdtemp(prefix="mirror-serve-bench-"))
    procs: list[subprocess.Popen[Any]] = []
    emu = AuthEmulator()
    emulators = None
    try:
        env, emulators = environment(args.store, work, emu)
        users = seed_users(env, emu, max(counts))
        port, floor_port = free_port(), free_port()
        log = work / "serve.log"
        server, url = start_serve(port, work / "data", env, log)
        procs.append(server)
        floor = subprocess.Popen([sys.executable, __file__, "--floor", str(floor_port)], env=env, stderr=log.open("a"))
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
        scenarios = [
            ("floor: bare FastAPI constant", {"url": floor_url, "method": "GET", "path": "/const"}, floor),
            ("floor: one store read", {"url": floor_url, "method": "GET", "path": "/read/{uid}"}, floor),
            ("GET /avatar/user/{id}", {"url": url, "method": "GET", "path": "/api/v1/avatar/user/{uid}"}, server),
            (
                "POST /avatar/generate (cached)",
                {"url": url, "method": "POST", "path": "/api/v1/avatar/generate"},
                server,
            ),
        ]
        print(
            f"mirror serve on loopback, {args.store} store"
            + (" (Firestore + Storage emulators, V4 signed URLs)" if args.store == "firebase" else " (SQLite)")
            + f"; {args.requests} measured requests per row; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at start"
        )
        modes = [("back to back (saturation)", 0.0)]
        if args.paced:
            modes.append((f"paced, {args.rate:g} req/s per client", 1 / args.rate))
        for clients in counts:
            common = {"users": users[:clients], "clients": clients, "requests": args.requests}
            for mode, interval in modes:
                rows = measure(scenarios, {**common, "interval": interval}, log)
                report(f"{clients} concurrent clients (one signed-in user each), {mode}", rows)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for p in procs:
            stop(p)
        emu.stop()
        if emulators is not None:
            emulators.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        print(json.dumps(asyncio.run(_load(json.loads(sys.stdin.read())))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--floor":
        floor_server(int(sys.argv[2]))
    else:
        main()

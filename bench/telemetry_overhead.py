"""What metrics and tracing cost on the cached serve path: the server's own CPU per request with
both off and with both on, measured in one run (target: at most 5 % more CPU per request).

Three `mirror serve` processes on the same data: "off" (serve_metrics: false, no OTLP
settings); "on" (/metrics with request, job and step metrics, and tracing as an OTLP endpoint
alone switches it on: one trace in ten, spans exported by OTLP/HTTP to a loopback collector this
script runs, which answers 200 and counts what it received); "on-all" (the same with every
request traced, OTEL_TRACES_SAMPLER=parentbased_always_on). Rounds alternate the arms so
drift on a shared machine hits every arm alike. The request is the app's POST
/api/v1/avatar/generate for an avatar that exists (a cache hit: token verified, cache read,
ledger line written), each client a different user signed in with the Firebase Auth emulator;
the local store, the offline renderer.

    .venv/bin/python bench/telemetry_overhead.py [--clients 20] [--requests 1500] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import synthetic_users
from serve_latency import PROGRESS, cpu_s, run_client, start_serve, stop, wait_up

TARGET = 0.05


class Collector:
    """A loopback OTLP/HTTP endpoint: accepts every export, counts requests and bytes."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                self.rfile.read(n)
                outer.exports += 1
                outer.bytes += n
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1500, help="measured requests per arm and round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from firebase_auth import AuthEmulator, free_port

    from mirror_cli.stores.local import LocalStore

    work = Path(tempfile.mkdtemp(prefix="mirror-telemetry-bench-"))
    procs: list[subprocess.Popen[Any]] = []
    emu = AuthEmulator()
    collector = Collector()
    try:
        store = LocalStore(root=work / "data")
        users = []
        for p in synthetic_users(args.clients):
            uid, token = emu.sign_up()
            store.put_user(p.model_copy(update={"id": uid}))
            users.append(
                {
                    "uid": uid,
                    "token": token,
                    "body": {"user_id": uid, "evolution_stage": "month", "progress_metrics": PROGRESS},
                }
            )
        store.close()
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "FIREBASE_AUTH_EMULATOR_HOST": emu.host,
            "MIRROR_AUTH_EMULATOR": "1",
            "MIRROR_FIREBASE_PROJECT": emu.project,
            "MIRROR_SERVE_RATE_PER_MINUTE": "1000000",
        }
        arms = {
            "off": {**base, "MIRROR_SERVE_METRICS": "false"},
            # metrics, and tracing as configured by an OTLP endpoint alone (one trace in ten)
            "on": {
                **base,
                "MIRROR_SERVE_METRICS": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                "OTEL_SERVICE_NAME": "mirror-bench",
            },
            # the worst case: every request traced
            "on-all": {
                **base,
                "MIRROR_SERVE_METRICS": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                "OTEL_SERVICE_NAME": "mirror-bench",
                "OTEL_TRACES_SAMPLER": "parentbased_always_on",
            },
        }
        servers: dict[str, tuple[subprocess.Popen[Any], str, Path]] = {}
        for name, env in arms.items():
            port, log = free_port(), work / f"serve-{name}.log"
            proc, url = start_serve(port, work / "data", env, log)
            procs.append(proc)
            servers[name] = (proc, url, log)
        for proc, url, log in servers.values():
            wait_up(url + "/api/v1/healthz", proc, log)
        # first avatars once (offline renderer); every measured request is then a cache hit
        run_client(
            {
                "url": servers["off"][1],
                "method": "POST",
                "path": "/api/v1/avatar/generate",
                "users": users,
                "setup": True,
            }
        )

        print(
            f"cached POST /api/v1/avatar/generate, {args.clients} clients back to back, {args.requests} requests "
            f"per arm and round, {args.rounds} round(s); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        print(f" {'round':>5} {'arm':>6} {'server CPU ms/req':>18} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} errors")
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        for rnd in range(1, args.rounds + 1):
            for name in arms:
                proc, url, log = servers[name]
                spec = {"url": url, "method": "POST", "path": "/api/v1/avatar/generate"}
                before = cpu_s(proc.pid)
                r = run_client({**spec, "users": users, "clients": args.clients, "requests": args.requests})
                per = (cpu_s(proc.pid) - before) * 1000 / max(1, r["n"] + args.clients)
                cpu[name].append(per)
                print(
                    f" {rnd:>5} {name:>6} {per:18.3f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['rps']:7.0f} "
                    f"{r['errors'] or '-'}"
                )
        time.sleep(6)  # the batch span processor exports every 5 s
        mean = {name: sum(v) / len(v) for name, v in cpu.items()}
        print()
        for name in ("on", "on-all"):
            overhead = mean[name] / mean["off"] - 1
            verdict = "within" if overhead <= TARGET else "OVER"
            print(
                f"server CPU per request, metrics + tracing {name}: {mean[name]:.3f} ms vs {mean['off']:.3f} ms off: "
                f"overhead {overhead:+.1%} ({verdict} the {TARGET:.0%} target)"
            )
        print(f"the collector received {collector.exports} OTLP export(s), {collector.bytes / 1024:.0f} KiB")
        scraped = __import__("httpx").get(servers["on"][1] + "/metrics", timeout=10).text
        lines = [x for x in scraped.splitlines() if x.startswith("mirror_jobs_total")]
        print("on-arm /metrics: " + "; ".join(lines))
    finally:
        for p in procs:
            stop(p)
        emu.stop()
        collector.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

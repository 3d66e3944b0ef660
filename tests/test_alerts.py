"""Alerts before the money is gone: budget thresholds warn once a month each, a run's failure
rate once per run; in the run summary, the nightly run's exit code (9), the metrics file / a
Pushgateway, and a webhook whose HMAC signature a loopback receiver verifies."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import make_config_dir
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import ExitCode
from mirror_cli.models import LedgerEvent
from mirror_cli.pipeline import Outcome, RunReport
from mirror_cli.stores.local import LocalStore
from mirror_cli.telemetry import alerts, webhook

NOW = "2026-11-20T12:00:00Z"
SECRET = "whsec-" + "k" * 26


class Receiver:
    """A loopback HTTP receiver: records every request; answers the queued statuses, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def spend(data_dir, usd: float, day: int = 10) -> None:
    store = LocalStore(root=data_dir)
    store.record_event(
        LedgerEvent(ts=datetime(2026, 11, day, tzinfo=UTC), user_id="u1", kind="generated", cost_usd=usd)
    )
    store.close()


def nightly(data_dir, cfg, *extra):
    r = CliRunner().invoke(
        app, ["evolve", "--due", "--json", "--now", NOW, "--data-dir", str(data_dir), "--config-dir", str(cfg), *extra]
    )
    return r, json.loads(r.stdout)


def test_budget_thresholds_warn_once_each_and_reach_the_webhook(tmp_path, data_dir, receiver, monkeypatch):
    monkeypatch.setenv("MIRROR_ALERT_WEBHOOK_SECRET", SECRET)
    cfg = make_config_dir(tmp_path, {"monthly_budget_usd": 10.0, "alerts": {"webhook_url": receiver.url + "/hook"}})
    spend(data_dir, 8.5)  # 85 % of the month's budget: past 50 % and 80 %

    r, out = nightly(data_dir, cfg)
    assert r.exit_code == ExitCode.OVER_THRESHOLD == 9, r.output
    fired = out["summary"]["alerts"]
    assert [(a["kind"], a["threshold"]) for a in fired] == [("budget", 0.5), ("budget", 0.8)]
    assert all(a["webhook"] == "sent" for a in fired) and "85%" in fired[0]["message"]

    # the receiver verifies each signature with the shared secret, on the raw body
    assert len(receiver.requests) == 2
    for method, path, headers, body in receiver.requests:
        assert (method, path) == ("POST", "/hook")
        ts, sig = headers["X-Mirror-Timestamp"], headers["X-Mirror-Signature"]
        assert webhook.verify(SECRET, ts, body, sig, now=time.time())
        assert not webhook.verify("another-secret-of-length", ts, body, sig, now=time.time())
        assert not webhook.verify(SECRET, ts, body + b" ", sig, now=time.time())
        assert not webhook.verify(SECRET, ts, body, sig, now=time.time() + 3600)  # a replay, an hour on
        assert json.loads(body)["kind"] == "budget" and SECRET not in body.decode()

    # the next night: the same thresholds stay quiet
    r, out = nightly(data_dir, cfg)
    assert r.exit_code == 0 and out["summary"]["alerts"] == [] and len(receiver.requests) == 2

    # spend passes 100 %: only that threshold is new
    spend(data_dir, 2.0, day=19)
    r, out = nightly(data_dir, cfg)
    assert r.exit_code == 9 and [a["threshold"] for a in out["summary"]["alerts"]] == [1.0]
    assert len(receiver.requests) == 3


def test_webhook_is_retried_and_never_fails_the_run(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MIRROR_ALERT_WEBHOOK_SECRET", SECRET)
    flaky = Receiver([503, 502])
    try:
        cfg = make_config_dir(tmp_path, {"monthly_budget_usd": 1.0, "alerts": {"webhook_url": flaky.url}})
        spend(data_dir, 0.6)
        r, out = nightly(data_dir, cfg)
        assert r.exit_code == 9 and out["summary"]["alerts"][0]["webhook"] == "sent"
        assert len(flaky.requests) == 3  # two 5xx answers, then delivered
    finally:
        flaky.close()
    # a receiver that is gone: the warning still reaches the summary and the exit code, quickly
    gone = Receiver()
    url = gone.url
    gone.close()
    cfg = make_config_dir(tmp_path, {"monthly_budget_usd": 1.0, "alerts": {"webhook_url": url, "webhook_attempts": 2}})
    spend(data_dir, 0.3)  # 90 %
    started = time.monotonic()
    r, out = nightly(data_dir, cfg)
    assert r.exit_code == 9 and out["summary"]["alerts"][0]["webhook"] == "failed"
    assert time.monotonic() - started < 30


def test_without_a_secret_nothing_is_sent_unsigned(tmp_path, data_dir, receiver):
    cfg = make_config_dir(tmp_path, {"monthly_budget_usd": 1.0, "alerts": {"webhook_url": receiver.url}})
    spend(data_dir, 0.6)
    r, out = nightly(data_dir, cfg)
    assert r.exit_code == 9 and "MIRROR_ALERT_WEBHOOK_SECRET" in out["summary"]["alerts"][0]["webhook"]
    assert receiver.requests == []


def _report(run_id: str, failed: int, ok: int) -> RunReport:
    outs = [Outcome(f"u{i}", "month", "failed", reason="500") for i in range(failed)]
    outs += [Outcome(f"v{i}", "month", "generated") for i in range(ok)]
    return RunReport(outcomes=outs, run_id=run_id)


def test_failure_rate_warns_once_per_run(tmp_path):
    from conftest import CONFIGS

    from mirror_cli.config import ConfigSet

    limits = ConfigSet(CONFIGS).limits  # 5 % of at least 10 jobs
    store = LocalStore(root=tmp_path / "s")
    now = datetime(2026, 11, 20, tzinfo=UTC)
    try:
        assert alerts.check_run(store, limits, _report("r1", 1, 19), now) == []  # 5 %: not above
        fired = alerts.check_run(store, limits, _report("r2", 2, 18), now)
        assert [(a.kind, a.value) for a in fired] == [("failure_rate", 0.1)]
        assert "mirror runs show r2" in fired[0].message
        assert alerts.check_run(store, limits, _report("r2", 2, 18), now) == []  # the same run again
        assert alerts.check_run(store, limits, _report("r3", 5, 4), now) == []  # 9 jobs: too few to judge
        assert len(alerts.check_run(store, limits, _report("r4", 3, 7), now)) == 1
    finally:
        store.close()


def test_run_metrics_file_and_pushgateway(tmp_path, data_dir, receiver):
    cfg = make_config_dir(tmp_path, {"monthly_budget_usd": 10.0})
    spend(data_dir, 6.0)
    prom = tmp_path / "textfile" / "mirror.prom"
    prom.parent.mkdir()
    r, _ = nightly(data_dir, cfg, "--metrics-file", str(prom), "--pushgateway", receiver.url, "--shard", "1/4")
    assert r.exit_code == 9, r.output

    families = {f.name: f for f in parse_openmetrics(prom.read_text())}
    alerts_fired = {s.labels["kind"]: s.value for s in families["mirror_run_alerts"].samples}
    assert alerts_fired == {"budget": 1.0, "failure_rate": 0.0}
    assert families["mirror_run_spend_usd"].samples[0].value == 0.0
    assert {s.labels["outcome"] for s in families["mirror_run_jobs"].samples} >= {"generated", "failed"}

    [(method, path, _, body)] = receiver.requests
    assert method == "PUT" and path == "/metrics/job/mirror_nightly/shard/1-of-4"
    pushed = {f.name for f in parse_text(body.decode())}
    assert {"mirror_run_alerts", "mirror_run_jobs", "mirror_run_last_finished_timestamp_seconds"} <= pushed


def test_a_bad_metrics_file_fails_before_the_run(tmp_path, data_dir):
    cfg = make_config_dir(tmp_path)
    r, out = nightly(data_dir, cfg, "--metrics-file", str(tmp_path / "missing" / "m.prom"))
    assert r.exit_code == 2 and "does not exist" in out["message"]
    assert not (data_dir / "mirror.db").exists()  # nothing ran

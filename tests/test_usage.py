"""`mirror usage` figures checked against a ledger written by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.models import LedgerEvent, TokenUsage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # day 20 of a 30-day month


def ev(day, uid, kind, cost=0.0, ok=None, out=0, text=0, img=0, detail=None):
    return LedgerEvent(
        ts=datetime(2026, 11, day, 10, tzinfo=UTC),
        user_id=uid,
        kind=kind,
        cost_usd=cost,
        validation_ok=ok,
        model="gpt-image-2",
        usage=TokenUsage(input_text_tokens=text, input_image_tokens=img, output_image_tokens=out),
        detail=detail,
    )


@pytest.fixture
def core(make_core):
    c = make_core(now=lambda: NOW)
    for e in [
        ev(3, "demo", "generated", 0.10, True, out=1000, text=100),
        ev(5, "maya", "generated", 0.20, False, out=2000, text=200, img=4000),
        ev(5, "maya", "cache_hit"),
        ev(20, "demo", "generated", 0.30, True, out=3000, text=300),
        ev(20, "demo", "cache_hit"),
        ev(20, "demo", "cache_hit"),
        ev(20, "kenji", "fallback", detail="limit system_daily"),
        ev(20, "kenji", "failed", detail="500 server_error"),
        ev(20, "leo", "spool_ingest", 0.05, True, out=500, text=50),
        LedgerEvent(ts=datetime(2026, 10, 31, 23, tzinfo=UTC), user_id="demo", kind="generated", cost_usd=9.0),
    ]:
        c.store.record_event(e)
    return c


def test_month_figures(core):
    f = core.usage()
    assert (f.start, f.end) == ("2026-11-01", "2026-11-30")
    assert f.generations == 4 and f.cache_hits == 3
    assert f.hit_rate == pytest.approx(3 / 7, abs=1e-4)
    assert f.cost_usd == pytest.approx(0.65) and f.fallbacks_served == 1 and f.failures == 1
    assert f.input_tokens == 100 + 200 + 4000 + 300 + 50 and f.output_tokens == 6500
    assert f.active_users == 3 and f.cost_per_active_user == pytest.approx(0.65 / 3, abs=1e-6)
    elapsed_days = 19.5  # Nov 1 00:00 -> Nov 20 12:00
    assert f.projected_month_usd == pytest.approx(0.65 / elapsed_days * 30, abs=1e-3)
    assert f.compliance_rate == pytest.approx(3 / 4)


def test_today_and_user_and_range(core):
    today = core.usage(period="today")
    assert today.generations == 2 and today.cost_usd == pytest.approx(0.35) and today.cache_hits == 2
    demo = core.usage(user="demo")
    assert demo.generations == 2 and demo.cost_usd == pytest.approx(0.40)
    from datetime import date

    rng = core.usage(since=date(2026, 11, 4), until=date(2026, 11, 5))
    assert rng.generations == 1 and rng.cost_usd == pytest.approx(0.20)
    october = core.usage(since=date(2026, 10, 1), until=date(2026, 10, 31))
    assert october.cost_usd == pytest.approx(9.0)


def test_recommendations_follow_the_figures(make_core):
    c = make_core(now=lambda: NOW)
    for i in range(30):
        c.store.record_event(ev(10, f"u{i % 3}", "generated", 3.0, ok=i % 2 == 0))
    tips = " ".join(c.usage().recommendations)
    assert "exceeds the $100.00 budget" in tips
    assert "above the $2 target" in tips and "Batch API" in tips
    assert "quality gate" in tips


def test_store_headroom_is_reported(core):
    ops = core.usage().store_ops
    assert set(ops) >= {"reads", "writes", "deletes"} and ops["writes"]["free_tier"] == 20_000
    assert ops["writes"]["today"] > 0


def test_cli_json_and_csv(core, data_dir):
    r = CliRunner().invoke(
        app,
        ["usage", "--json", "--data-dir", str(data_dir), "--since", "2026-11-01", "--until", "2026-11-30"],
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["summary"]["generations"] == 4
    # --since alone counts up to the core's today: the 20th is in on the 25th, not on the 16th
    rows = {}
    for now in ("2026-11-25T08:00:00Z", "2026-11-16T08:00:00Z"):
        c = CliRunner().invoke(
            app, ["usage", "--csv", "--data-dir", str(data_dir), "--since", "2026-11-01", "--now", now]
        )
        header, row = c.stdout.strip().splitlines()
        rows[now[:10]] = dict(zip(header.split(","), row.split(","), strict=True))["generations"]
    assert rows == {"2026-11-25": "4", "2026-11-16": "2"}

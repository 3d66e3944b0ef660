"""KPIs against their targets: `mirror usage` on a seeded ledger whose answers are worked out by
hand (nearest-rank percentiles), per day with --by day, drawn as PNG/SVG and in the terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml
from conftest import make_config_dir
from PIL import Image
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import ConfigError
from mirror_cli.kpis import percentile
from mirror_cli.models import JobTimings, LedgerEvent

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RANGE = ["--since", "2026-11-01", "--until", "2026-11-30"]
USERS = ["ana", "ben", "cy", "dee"]


def seed(store) -> None:
    """20 paid images over Nov 3 and Nov 4 taking 1..20 s; 18 pass the gate; 10 scored for the
    same face, 2 drifted; 60 cache hits; 1 failure, 1 unanswered request, 2 fallbacks; $0.05 each."""
    for i in range(20):
        day = 3 if i < 10 else 4
        store.record_event(
            LedgerEvent(
                ts=datetime(2026, 11, day, 1, i, tzinfo=UTC),
                user_id=USERS[i % 4],
                kind="generated",
                cost_usd=0.05,
                validation_ok=i not in (0, 1),
                identity_distance=0.7 if i in (2, 3) else (0.3 if 4 <= i < 12 else None),
                identity_drift=(i in (2, 3)) if 2 <= i < 12 else None,
                timings=JobTimings(provider_s=i + 0.5, total_s=float(i + 1)),
            )
        )
    for i in range(60):
        store.record_event(LedgerEvent(ts=datetime(2026, 11, 4, 2, i, tzinfo=UTC), user_id="ana", kind="cache_hit"))
    for kind in ("failed", "may_have_billed", "fallback", "fallback"):
        store.record_event(LedgerEvent(ts=datetime(2026, 11, 4, 3, tzinfo=UTC), user_id="ben", kind=kind))
    # a paid image from before jobs were measured counts everywhere but in the percentiles
    store.record_event(
        LedgerEvent(ts=datetime(2026, 11, 4, 4, tzinfo=UTC), user_id="cy", kind="spool_ingest", cost_usd=0.05)
    )


@pytest.fixture
def core(make_core):
    c = make_core(now=lambda: NOW, examples=False)
    seed(c.store)
    return c


def by_name(kpis):
    return {k["name"]: k for k in kpis}


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(20, 0, -1)]  # unsorted on purpose
    assert percentile(values, 0.95) == 19.0  # rank ceil(0.95 * 20) = 19
    assert percentile(values, 0.50) == 10.0  # rank 10
    assert percentile([4.0], 0.95) == 4.0 and percentile([], 0.95) is None
    assert percentile([1.0, 2.0, 3.0, 100.0], 0.95) == 100.0  # rank ceil(3.8) = 4


def test_period_kpis_match_the_hand_worked_answers(core):
    k = by_name(core.usage(since=datetime(2026, 11, 1).date(), until=datetime(2026, 11, 30).date()).kpis)
    # 21 paid (20 + the ingested one) of 23 sent (+1 failed, +1 unanswered)
    assert k["success_rate"]["value"] == pytest.approx(21 / 23, abs=1e-4) and k["success_rate"]["ok"] is False
    assert k["generation_p95_s"]["value"] == 19.0 and k["generation_p95_s"]["ok"] is True  # <= 30 s
    assert k["generation_p50_s"]["value"] == 10.0
    assert k["style_compliance"]["value"] == pytest.approx(18 / 20) and k["style_compliance"]["ok"] is True
    assert k["identity_drift_rate"]["value"] == pytest.approx(2 / 10) and k["identity_drift_rate"]["ok"] is False
    assert k["cache_hit_rate"]["value"] == pytest.approx(60 / 81, abs=1e-4) and k["cache_hit_rate"]["ok"] is False
    assert k["fallback_rate"]["value"] == pytest.approx(2 / 83, abs=1e-4) and k["fallback_rate"]["ok"] is True
    # $1.05 over the four users who got a paid image
    assert k["cost_per_active_user_usd"]["value"] == pytest.approx(1.05 / 4) and k["cost_per_active_user_usd"]["ok"]
    assert {x["target"] for x in (k["success_rate"], k["cache_hit_rate"])} == {0.95, 0.80}  # the design's defaults


def test_days_have_their_own_figures(core):
    days = core.usage(since=datetime(2026, 11, 1).date(), until=datetime(2026, 11, 30).date()).days
    assert [d["day"] for d in days] == ["2026-11-03", "2026-11-04"]
    first, second = days
    assert first["paid"] == 10 and first["generation_p95_s"] == 10.0 and first["generation_p50_s"] == 5.0
    assert first["success_rate"] == 1.0 and first["success_rate_ok"] is True
    assert first["cache_hit_rate"] == 0.0 and first["cache_hit_rate_ok"] is False
    assert second["paid"] == 11 and second["generation_p95_s"] == 20.0  # 11..20: rank ceil(9.5) = 10
    assert second["success_rate"] == pytest.approx(11 / 13, abs=1e-4)
    assert second["cache_hit_rate"] == pytest.approx(60 / 71, abs=1e-4) and second["cache_hit_rate_ok"] is True


def test_targets_come_from_the_config(make_core, tmp_path):
    cfg = make_config_dir(tmp_path, {"targets": {"generation_p95_s": 15, "success_rate": 0.9}})
    c = make_core(now=lambda: NOW, examples=False, config_dir=cfg)
    seed(c.store)
    k = by_name(c.usage(since=datetime(2026, 11, 1).date()).kpis)
    assert k["generation_p95_s"]["target"] == 15 and k["generation_p95_s"]["ok"] is False
    assert k["success_rate"]["ok"] is True  # 91.3 % >= 90 %


@pytest.mark.parametrize(
    ("targets", "named"),
    [({"success_rate": 1.5}, "targets.success_rate"), ({"p99": 3}, "targets.p99")],
)
def test_bad_targets_name_the_file_and_field(make_core, tmp_path, targets, named):
    cfg = make_config_dir(tmp_path, {"targets": targets})
    with pytest.raises(ConfigError) as err:
        make_core(examples=False, config_dir=cfg)
    assert "limits.yaml" in err.value.message and named in err.value.message


def test_shipped_limits_spell_out_the_defaults():
    from conftest import CONFIGS

    shipped = yaml.safe_load((CONFIGS / "limits.yaml").read_text())
    assert shipped["targets"]["success_rate"] == 0.95 and shipped["targets"]["generation_p95_s"] == 30.0
    assert shipped["targets"]["cost_per_active_user_usd"] == 2.0 and shipped["targets"]["cache_hit_rate"] == 0.8


def test_cli_by_day_json_chart_and_terminal(core, data_dir, tmp_path):
    runner = CliRunner()
    png, svg = tmp_path / "out" / "kpis.png", tmp_path / "kpis.svg"
    r = runner.invoke(app, ["usage", "--by", "day", "--json", "--chart", str(png), "--data-dir", str(data_dir), *RANGE])
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)
    assert [d["day"] for d in payload["items"]] == ["2026-11-03", "2026-11-04"]
    assert by_name(payload["summary"]["kpis"])["generation_p95_s"]["value"] == 19.0
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 400
    r = runner.invoke(app, ["usage", "--by", "day", "--chart", str(svg), "--data-dir", str(data_dir), *RANGE])
    assert r.exit_code == 0, r.output
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    assert "KPIs against their targets" in r.stdout and "FAIL" in r.stdout and "PASS" in r.stdout
    assert "generation p95 (s)" in r.stdout  # the terminal chart
    assert "2026-11-03 .. 2026-11-04" in r.stdout and "cache hits" in r.stdout


def test_cli_csv_by_day(core, data_dir):
    r = CliRunner().invoke(app, ["usage", "--by", "day", "--csv", "--data-dir", str(data_dir), *RANGE])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("day,paid,") and len(lines) == 3 and lines[1].startswith("2026-11-03,10,")


@pytest.mark.parametrize("args", [["--by", "week"], ["--chart", "kpis.gif"]])
def test_cli_bad_flags_exit_2(core, data_dir, tmp_path, args):
    r = CliRunner().invoke(app, ["usage", "--json", *args, "--data-dir", str(data_dir)])
    assert r.exit_code == 2, r.output
    assert json.loads(r.stdout)["summary"]["ok"] is False
    assert not (tmp_path / "kpis.gif").exists()

"""Human output reads well in an 80-column terminal: money as dollars ($0.0556, $0.06,
$1,234.50, never a raw float), rates as percentages, counts with separators, and the batch
summary wrapped at the terminal's width, not the table's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.units import count, figure, label, money, ratio, size

RAW_FLOAT = re.compile(r"(?<![\d$.~<])\d+\.\d{3,}(?![\d%])")  # 0.0556 or 117466.0 without a unit


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (0, "$0.00"),
        (0.0556, "$0.0556"),
        (0.06, "$0.06"),
        (0.5, "$0.50"),
        (0.011, "$0.011"),
        (1234.5, "$1,234.50"),
        (0.00001, "<$0.0001"),
        (None, "–"),
    ],
)
def test_money(usd, shown):
    assert money(usd) == shown


def test_other_figures():
    assert count(1234567) == "1,234,567" and ratio(0.7059) == "70.6%" and size(280_700) == "280.7 kB"
    assert figure("hit_rate", 0.5) == "50.0%" and figure("cost_per_active_user", 0.0556) == "$0.0556"
    assert figure("identity_worst", 0.3412) == "0.34" and figure("identity_worst", None) == "–"
    assert label("may_have_billed_usd", {"may_have_billed"}) == "may have billed cost"
    assert label("cost_usd") == "cost"


def run(*args: str):
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return res.stdout


def narrow(text: str) -> list[str]:
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80, max(lines, key=len)
    return lines


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    run("users", "import", "--examples")
    return tmp_path


def test_usage_after_paid_runs_fits_and_shows_units(project, openai_env):
    paid = ["--provider", "openai", "--base-url", openai_env.url]
    run("generate", "--user", "demo", "--user", "maya", "--stage", "newReflection", *paid)
    run("generate", "--user", "demo", "--stage", "newReflection", *paid)  # a cache hit
    lines = narrow(run("usage"))
    text = "\n".join(lines)
    assert not RAW_FLOAT.findall(text), RAW_FLOAT.findall(text)
    rows = {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r"│ ([a-z ]+?) +│ (.+?) +│", text)}
    assert re.fullmatch(r"\$0\.\d{2,4}", rows["cost"]), rows["cost"]
    assert rows["hit rate"] == "33.3%" and rows["compliance rate"].endswith("%")
    assert rows["cost per active user"].startswith("$") and rows["projected month"].startswith("$")
    assert re.search(r"│ bytes stored today +│ [\d.,]+ [kMG]?B +│ 5\.0 GB", text)


def test_batch_summary_wraps_at_the_terminal_not_the_table(project):
    lines = narrow(run("generate", "--all", "--stage", "firstWeek"))
    totals = next(i for i, ln in enumerate(lines) if ln.startswith("6 generated"))
    assert len(lines[totals]) > 60  # one sentence across the terminal, not a 40-column caption
    assert "cost $0.00" in " ".join(lines[totals : totals + 2])
    assert not RAW_FLOAT.findall("\n".join(lines))


def test_one_users_run_fits_with_a_relative_image_path(project):
    lines = narrow(run("generate", "--user", "demo", "--stage", "month"))
    assert any("mirror-data/avatars/demo/" in ln for ln in lines)
    assert not any(str(project) in ln for ln in lines)

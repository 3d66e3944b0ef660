"""The CLI end to end on the embedded default (local provider, local store)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import ExitCode

runner = CliRunner()


def mirror(data_dir: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [*args, "--data-dir", str(data_dir)], env=env)


def as_json(result):
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def summary(result):
    return as_json(result)["summary"]


@pytest.fixture
def examples(data_dir):
    """The example personas, imported into the test's store as 'make demo' does."""
    result = mirror(data_dir, "users", "import", "--examples", "--json")
    assert result.exit_code == 0, result.output
    assert summary(result)["imported"] == 6
    return as_json(result)["items"]


def stored(data_dir, store_kind, ref):
    """The bytes of a stored image, wherever the store keeps them."""
    if store_kind == "local":
        return (data_dir / ref).read_bytes()
    from mirror_cli.settings import load_settings
    from mirror_cli.stores.firebase import FirebaseStore

    store = FirebaseStore(load_settings({}))
    try:
        return store.read_image(ref)
    finally:
        store.close()


def test_generate_then_cached(data_dir, store_kind, examples):
    first = mirror(data_dir, "generate", "--user", "demo", "--stage", "month", "--json")
    assert first.exit_code == 0, first.output
    job = as_json(first)["jobs"][0]
    assert (job["cached"], job["cost_usd"], job["width"], job["height"]) == (False, 0.0, 1024, 1024)
    assert job["avatar_id"] and "Alex" in job["message"]
    assert job["image_path"] == f"avatars/demo/month-{job['avatar_id']}.webp"
    assert stored(data_dir, store_kind, job["image_path"])[:4] == b"RIFF"
    assert stored(data_dir, store_kind, job["thumb_path"])[:4] == b"RIFF"
    files_before = sorted(p for p in data_dir.rglob("*.webp"))
    events_before = summary(mirror(data_dir, "usage", "--json"))["generations"]

    again = mirror(data_dir, "generate", "--user", "demo", "--stage", "month", "--json")
    assert again.exit_code == 0
    job2 = as_json(again)["jobs"][0]
    assert job2["cached"] is True and job2["avatar_id"] == job["avatar_id"] and job2["cost_usd"] == 0
    assert sorted(p for p in data_dir.rglob("*.webp")) == files_before
    usage = summary(mirror(data_dir, "usage", "--json"))
    assert usage["generations"] == events_before == 1 and usage["cache_hits"] == 1


def test_stage_name_forms_are_the_same_job(data_dir, store_kind, examples):
    a = as_json(mirror(data_dir, "generate", "-u", "kenji", "-s", "half_year", "--json"))["jobs"][0]
    b = as_json(mirror(data_dir, "generate", "-u", "kenji", "-s", "half-year", "--json"))["jobs"][0]
    assert a["avatar_id"] == b["avatar_id"] and b["cached"]


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["generate", "--user", "ghost", "--stage", "month"], ExitCode.NOT_FOUND, "Known users: amira, demo"),
        (["generate", "--user", "demo", "--stage", "decade"], ExitCode.NOT_FOUND, "newReflection, firstWeek"),
        (["generate", "--user", "../../etc/passwd", "--stage", "month"], ExitCode.USAGE, "letters, digits"),
        (["generate", "--user", "a b", "--stage", "month"], ExitCode.USAGE, "letters, digits"),
        (["generate", "--stage", "month"], ExitCode.USAGE, "--user U"),
        (["trilogy", "--user", "demo", "--photo", "README.md"], ExitCode.USAGE, "PNG, JPEG or WebP"),
        (["trilogy", "--user", "demo", "--photo", "missing.jpg"], ExitCode.USAGE, "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(data_dir, args, code, needle, examples):
    def state():
        files = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if "mirror.db" not in p.name)
        return files, as_json(mirror(data_dir, "users", "list", "--json")), summary(mirror(data_dir, "usage", "--json"))

    before = state()
    result = mirror(data_dir, *args, "--json")
    assert result.exit_code == code, result.output
    err = as_json(result)
    assert needle in err["message"] + (err["hint"] or "")
    assert err["summary"]["exit_code"] == code
    assert state()[0] == before[0] and state()[1] == before[1]
    assert state()[2]["generations"] == before[2]["generations"]


def test_an_empty_store_has_no_users_and_says_how_to_add_them(data_dir):
    result = mirror(data_dir, "generate", "--user", "demo", "--stage", "month", "--json")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "users import --examples" in as_json(result)["hint"]
    listing = as_json(mirror(data_dir, "users", "list", "--json"))
    assert listing == {"summary": {"users": 0}, "items": []}


def test_usage_errors_are_json_with_exit_2(data_dir):
    for args in (["generate", "--bogus"], ["generate", "--concurrency", "0"], ["nosuchcommand"]):
        result = mirror(data_dir, *args, "--json")
        assert result.exit_code == 2, (args, result.output)
        err = as_json(result)
        assert err["exit_code"] == 2 and err["summary"]["ok"] is False and err["message"]


def test_help_shows_env_names_and_no_type_noise():
    result = runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("MIRROR_DATA_DIR", "MIRROR_STORE", "MIRROR_PROVIDER", "MIRROR_CONFIG_DIR", "MIRROR_SETTINGS"):
        assert name in result.output, name
    assert "<bool>" not in result.output and "<str>" not in result.output
    assert result.output.count("Settings (flag > MIRROR_* env") == 1  # one panel
    short = runner.invoke(app, ["users", "list", "--help"], env={"COLUMNS": "200"}).output
    assert "MIRROR_DATA_DIR" in short and "--provider" not in short


def test_human_error_output(data_dir, examples):
    result = mirror(data_dir, "generate", "--user", "ghost", "--stage", "month")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "Unknown user 'ghost'" in result.output and "fix:" in result.output


def test_corrupt_database_is_a_store_error(data_dir):
    data_dir.mkdir()
    (data_dir / "mirror.db").write_bytes(b"this is not sqlite" * 100)
    result = mirror(data_dir, "generate", "--user", "demo", "--stage", "month", "--json")
    assert result.exit_code == ExitCode.STORE
    assert "cannot be opened" in as_json(result)["message"]


def test_invalid_yaml_through_the_cli(tmp_path, data_dir):
    cfg = tmp_path / "cfg"
    shutil.copytree(CONFIGS, cfg)
    (cfg / "limits.yaml").write_text("per_user_daily: many\n")
    result = runner.invoke(
        app,
        [
            "generate",
            "-u",
            "demo",
            "-s",
            "month",
            "--config-dir",
            str(cfg),
            "--data-dir",
            str(data_dir),
            "--json",
        ],
    )
    assert result.exit_code == ExitCode.CONFIG
    msg = as_json(result)["message"]
    assert "limits.yaml" in msg and "per_user_daily (line 1)" in msg


def test_generate_all_trilogy_usage_purge(data_dir, store_kind, examples):
    res = mirror(data_dir, "generate", "--all", "--stage", "firstWeek", "--json")
    assert res.exit_code == 0, res.output
    report = as_json(res)
    assert report["summary"]["generated"] == 6 and report["summary"]["run_id"]
    tri = as_json(mirror(data_dir, "trilogy", "--user", "maya", "--json"))
    assert [j["target"] for j in tri["jobs"]] == ["original", "current", "future2048"]
    assert all(j["status"] == "generated" for j in tri["jobs"])
    usage = summary(mirror(data_dir, "usage", "--json"))
    assert usage["generations"] == 9 and usage["cost_usd"] == 0
    csv_out = mirror(data_dir, "usage", "--csv")
    assert csv_out.stdout.splitlines()[0].startswith("period,start,end")
    dry = summary(mirror(data_dir, "purge-cache", "--all", "--dry-run", "--json"))
    assert dry["entries_removed"] == 9 and dry["images_removed"] == 0 and dry["kept_in_timeline"] == 9
    runs = as_json(mirror(data_dir, "runs", "--json"))["items"]
    assert runs[0]["command"] == "generate" and runs[0]["state"] == "finished"


def test_dry_run_spends_nothing(data_dir, examples):
    res = as_json(mirror(data_dir, "generate", "--user", "demo", "--stage", "month", "--dry-run", "--json"))
    assert res["jobs"][0]["status"] == "planned"
    assert not (data_dir / "avatars").exists() or not list((data_dir / "avatars").rglob("*.webp"))


def test_help_is_fast_and_lazy():
    code = (
        "import sys, mirror_cli.cli.app; "
        "print(','.join(m for m in ('openai','rich','firebase_admin') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_installed_entry_point_subprocess(tmp_path):
    exe = Path(sys.executable).parent / "mirror"
    assert exe.exists(), "the console script 'mirror' is installed by 'make test'"
    env = {**os.environ, "MIRROR_DATA_DIR": str(tmp_path / "d")}
    subprocess.run([str(exe), "users", "import", "--examples"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [str(exe), "generate", "--user", "leo", "--stage", "quarter", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["jobs"][0]["status"] == "generated"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env)
    assert version.stdout.startswith("mirror ")


def test_batch_summary_by_default_and_cron_lines_with_verbose(tmp_path):
    """A batch run prints a summary table; with --verbose (not on a terminal), one quiet line
    per job on stderr and one row per job."""
    exe = Path(sys.executable).parent / "mirror"
    env = {**os.environ, "MIRROR_DATA_DIR": str(tmp_path / "d"), "COLUMNS": "160"}
    subprocess.run([str(exe), "users", "import", "--examples"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [str(exe), "generate", "--all", "--stage", "firstWeek"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "generate firstWeek: 6 job(s)" in out.stdout and "add --verbose" in out.stdout
    assert "I-There to " not in out.stdout and "generate firstWeek:" not in out.stderr
    out = subprocess.run(
        [str(exe), "generate", "--all", "--stage", "month", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stderr.splitlines() if "generate month:" in x]
    assert len(lines) == 6 and all(" generated $0.0000" in x for x in lines)
    assert out.stdout.count("I-There to ") == 6

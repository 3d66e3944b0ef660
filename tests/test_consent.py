"""Consent: a photo is used only with the user's recorded consent — refused before anything is
uploaded or paid (exit 2 naming consent and how to record it), recorded and withdrawn with
'mirror users consent', kept through a profile rewrite, and stored on both stores. The API's
side (POST /api/v1/users/{id}/consent, 403 without it) is in test_serve.py's photo test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PINNED_NOW, import_examples, openai_flags
from PIL import Image
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import ConsentError, ExitCode, UsageError
from mirror_cli.profiles import ProfileUpdate, save_profile


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "me.jpg"
    Image.new("RGB", (320, 400), (200, 150, 120)).save(path)
    return path


def _cli(*args: str) -> tuple[int, dict]:
    res = CliRunner().invoke(app, [*args, "--json"])
    return res.exit_code, json.loads(res.stdout)


def test_a_photo_without_consent_is_refused_before_anything_is_paid(tmp_path, openai_env, fast_configs):
    data = tmp_path / "data"
    import_examples(data)
    flags = openai_flags(openai_env.url, fast_configs, data)
    photo = str(_photo(tmp_path))
    code, out = _cli("trilogy", "--user", "leo", "--photo", photo, *flags)
    assert code == ExitCode.USAGE
    assert out["error"] == "ConsentError" and "consent" in out["message"]
    assert "mirror users consent --user leo --photo" in out["hint"]
    assert openai_env.requests == []

    store = ["--data-dir", str(data)]
    code, rec = _cli("users", "consent", "--user", "leo", "--photo", "--terms", "2026-11", "--by", "dana", *store)
    rec = rec["summary"]
    assert code == 0
    assert (rec["granted"], rec["terms_version"], rec["recorded_by"]) == (True, "2026-11", "operator:dana")
    assert rec["at"].startswith(PINNED_NOW.date().isoformat())  # the core's clock
    code, out = _cli("trilogy", "--user", "leo", "--photo", photo, *flags)
    assert code == 0 and [j["status"] for j in out["jobs"]] == ["generated"] * 3
    billed = len(openai_env.requests)
    assert billed == 3

    code, rec = _cli("users", "consent", "--user", "leo", "--photo", "--withdraw", *store)
    rec = rec["summary"]
    assert code == 0 and rec["granted"] is False
    code, out = _cli("trilogy", "--user", "leo", "--photo", _photo(tmp_path / "..").as_posix(), *flags)
    assert code == ExitCode.USAGE and "withdrew consent" in out["message"]
    assert len(openai_env.requests) == billed
    # without a photo the trilogy needs no photo consent
    code, out = _cli("trilogy", "--user", "leo", *flags)
    assert code != ExitCode.USAGE and "error" not in out and len(out["jobs"]) == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--user", "leo"], "exactly one of --photo or --generation"),
        (["--user", "leo", "--photo", "--generation"], "exactly one of --photo or --generation"),
        (["--user", "leo", "--photo", "--terms", "v1; DROP"], "not a version name"),
        (["--user", "nobody-here", "--photo"], "not in the store"),
        (["--user", "../etc", "--photo"], "Invalid user id"),
    ],
)
def test_consent_command_refuses_bad_input_and_changes_nothing(tmp_path, args, words):
    data = tmp_path / "data"
    import_examples(data)
    res = CliRunner().invoke(app, ["users", "consent", *args, "--data-dir", str(data)])
    assert res.exit_code in (ExitCode.USAGE, ExitCode.NOT_FOUND), res.output
    assert words in res.output
    listed = CliRunner().invoke(app, ["users", "list", "--json", "--data-dir", str(data)])
    assert listed.exit_code == 0


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_consent_is_stored_and_survives_a_profile_rewrite(make_core, request, store):
    flags = {}
    if store == "firebase":
        request.getfixturevalue("firebase_env")
        flags["store"] = "firebase"
    core = make_core(**flags)
    core.record_consent("maya", "photo", granted=True, terms_version="v2", recorded_by="app")
    again = make_core(examples=False, **flags)  # a fresh core reads it back from the store
    record = again.store.get_user("maya").consent["photo"]
    assert (record.granted, record.terms_version, record.recorded_by) == (True, "v2", "app")
    save_profile(again.store, "maya", ProfileUpdate(name="Maya R.", timezone="Asia/Kolkata"))
    kept = again.store.get_user("maya")
    assert kept.name == "Maya R." and kept.consent["photo"].granted is True


def test_consent_error_is_a_usage_error_worded_for_both_edges(make_core, tmp_path):
    core = make_core()
    with pytest.raises(ConsentError) as err:
        core.trilogy("maya", _photo(tmp_path))
    assert isinstance(err.value, UsageError) and err.value.exit_code == ExitCode.USAGE
    assert "POST /api/v1/users/maya/consent" in (err.value.hint or "")

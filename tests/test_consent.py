"""Consent: a photo is used only with the user's recorded consent — refused before anything is
uploaded or paid (exit 2 naming consent and how to record it), recorded and withdrawn with
'mirror users consent', kept through a profile rewrite, and stored on both stores. The API's
side (POST /api/v1/users/{id}/consent, 403 without it) is in test_serve.py's photo test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PINNED_NOW, import_examples, make_config_dir, openai_flags
from PIL import Image
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import ConsentError, ExitCode, UsageError
from mirror_cli.models import PHOTO_ROLE, LedgerEvent
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


def _coloured_photo(tmp_path: Path, name: str, rgb: tuple[int, int, int]) -> Path:
    path = tmp_path / f"{name}.jpg"
    Image.new("RGB", (320, 400), rgb).save(path)
    return path


def _held_photo_files(core, uid: str) -> set[str]:
    """The OpenAI files the batch runs' records hold for ``uid``'s photo."""
    return {
        str(e["id"])
        for run in core.store.batch_runs()
        for e in (run.params.get("uploads") or {}).values()
        if uid in e.get("users", []) and e.get("photo")
    }


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_withdrawing_photo_consent_deletes_what_was_kept_of_the_photo(make_core, request, openai_env, tmp_path, store):
    from mirror_cli.errors import MirrorError

    cfg = make_config_dir(tmp_path, {"per_user_daily": 50, "system_daily": 1000})
    flags: dict = {"provider": "openai", "base_url": openai_env.url, "config_dir": cfg}
    if store == "firebase":
        request.getfixturevalue("firebase_env")
        flags["store"] = "firebase"
    core = make_core(**flags)
    for uid in ("maya", "kenji"):
        core.record_consent(uid, "photo", granted=True, terms_version="v1", recorded_by="app")
    openai_env.bad_next.append("blank")  # the first image fails the gate: kept as a rejected photo image
    core.trilogy("maya", _coloured_photo(tmp_path, "maya", (200, 150, 120)))  # three avatars drawn from it
    core.trilogy("kenji", _coloured_photo(tmp_path, "kenji", (90, 60, 40)))
    # a photo trilogy still in a batch: the photo is a file OpenAI holds until the batch is collected
    batch = make_core(examples=False, **{**flags, "provider": "openai-batch"})
    batch.trilogy("maya", _coloured_photo(tmp_path, "maya2", (180, 140, 110)))
    batch.trilogy("kenji", _coloured_photo(tmp_path, "kenji2", (80, 50, 30)))
    (maya_file,) = _held_photo_files(core, "maya")
    (kenji_file,) = _held_photo_files(core, "kenji")
    assert {maya_file, kenji_file} <= set(openai_env.files)
    # a gate retry of a photo job left in the spool, the rejected image it names, and a retry of another job
    rejected, _ = core.store.put_image("maya", "rejected-photo-past-abc", b"rejected", None)
    core.spool.mark_retry("maya", "p" * 64, {"user_id": "maya", "photo": True, "rejected": rejected})
    core.spool.mark_retry("maya", "q" * 64, {"user_id": "maya", "photo": False})
    # the trilogy's reject (named rejected-photo-*, noted by its paid ledger line), and one not drawn from the photo
    (earlier,) = [
        e.detail.rsplit("kept at ", 1)[1] for e in core.store.events(uid="maya") if "kept at" in (e.detail or "")
    ]
    assert "/rejected-photo-" in earlier and core.store.read_image(earlier)
    other_reject, _ = core.store.put_image("maya", "rejected-month-ghi", b"rejected", None)
    note = f"rejected by the quality gate (too dark); kept at {other_reject}"
    core.store.record_event(LedgerEvent(ts=PINNED_NOW, user_id="maya", kind="generated", detail=note))
    avatars = {r.id for r in core.store.list_avatars("maya")}
    drawn = {r.id for r in core.store.list_avatars("maya") if any(ref.role == PHOTO_ROLE for ref in r.references)}
    photo_cache = [e for e in core.store.cache_entries("maya") if e.avatar_id in drawn]
    assert len(avatars) == 3 and len(drawn) >= 2 and len(photo_cache) == len(drawn)
    kenji_cache = core.store.cache_entries("kenji")

    change = core.record_consent("maya", "photo", granted=False, terms_version="v1", recorded_by="app")
    assert change.persona.consent["photo"].granted is False
    assert change.deleted == {
        "openai_files": 1,
        "cache_entries": len(photo_cache),
        "spool_files": 1,
        "rejected_images": 2,
    }
    # OpenAI no longer holds the photo; the other user's file stays
    assert maya_file in openai_env.deleted_files and maya_file not in openai_env.files
    assert kenji_file in openai_env.files and _held_photo_files(core, "maya") == set()
    # no cache entry of a photo request, no photo retry; the avatars stay (the user's own)
    assert not {e.avatar_id for e in core.store.cache_entries("maya")} & drawn
    assert {r.id for r in core.store.list_avatars("maya")} == avatars
    assert core.spool.get("maya", "p" * 64) is None and core.spool.get("maya", "q" * 64) is not None
    for ref in (rejected, earlier):
        with pytest.raises(MirrorError):
            core.store.read_image(ref)
    assert core.store.read_image(other_reject) == b"rejected"
    assert core.store.cache_entries("kenji") == kenji_cache
    # a repeat deletes nothing more
    again = core.record_consent("maya", "photo", granted=False, terms_version="v1", recorded_by="app")
    assert set(again.deleted.values()) == {0}


def test_withdrawal_through_the_cli_says_what_was_deleted(tmp_path):
    data = tmp_path / "data"
    import_examples(data)
    store = ["--data-dir", str(data)]
    assert _cli("users", "consent", "--user", "leo", "--photo", *store)[0] == 0
    code, out = _cli("users", "consent", "--user", "leo", "--photo", "--withdraw", *store)
    assert code == 0 and out["summary"]["deleted"] == {
        "openai_files": 0,
        "cache_entries": 0,
        "spool_files": 0,
        "rejected_images": 0,
    }
    human = CliRunner().invoke(app, ["users", "consent", "--user", "leo", "--generation", *store])
    assert human.exit_code == 0 and "deleted" not in human.output  # only a photo withdrawal deletes

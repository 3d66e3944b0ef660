# ruff: noqa: F811  (the serve fixtures are imported by name, as in tests/test_serve*.py)
"""Every paid image is moderated before it is shown: the loopback OpenAI server's moderation
endpoint (the real SDK, image input as a data URL) flags the pictures it marked, answers 500 on
demand and counts every check. A flagged image is kept hidden (never listed, never current,
never re-bought) and the user gets the fallback; a check that fails keeps the paid image hidden in
the spool until the next run checks it; the offline provider skips moderation and says so."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import yaml
from conftest import make_config_dir
from openai_server import Fault
from serve_support import auth_env, bearer, live, new_user, serve_settings  # noqa: F401 (fixtures, by name)

from mirror_cli.config import ConfigSet
from mirror_cli.errors import ConfigError
from mirror_cli.stores.reports import report_id

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
FLAGGED_FOR = ["violence", "violence/graphic"]  # what the loopback endpoint flags a marked picture for


def _paid(core, uid):
    return [e for e in core.store.events(uid=uid) if e.kind in ("generated", "spool_ingest")]


def _core(make_core, openai_env, tmp_path, request, store, limits=None):
    if store == "firebase":
        request.getfixturevalue("firebase_env")
    cfg = make_config_dir(tmp_path, limits)
    return make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, store=store, now=lambda: NOW)


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_a_flagged_image_is_kept_hidden_and_the_user_gets_the_fallback(make_core, openai_env, tmp_path, request, store):
    core = _core(make_core, openai_env, tmp_path, request, store)
    openai_env.unsafe_next = 1
    out = core.generate(["demo"], "month").outcomes[0]

    # the job degrades to the stage's fallback: the paid image is not what the user gets
    assert out.status == "blocked" and out.record is None
    assert out.served_path is not None and out.image_url is not None  # the stage's fallback picture
    assert out.cost_usd > 0 and "image moderation flagged: violence, violence/graphic" in (out.reason or "")
    assert out.moderation is not None and out.moderation.verdict == "flagged"
    hidden = out.hidden
    assert hidden is not None and out.served_path != hidden.image_path

    # stored, with its verdict, hidden by the moderation's report: not listed, not in the timeline
    stored = core.store.get_avatar("demo", hidden.id)
    assert stored is not None and stored.hidden_by == report_id("demo", hidden.id)
    verdict = stored.moderation
    assert verdict is not None and verdict.verdict == "flagged" and verdict.categories == FLAGGED_FOR
    assert verdict.model == "omni-moderation-latest" and verdict.checked_at == NOW
    assert core.timeline("demo") == []
    assert core.store.read_image(stored.image_path)  # the paid image is kept (for reports), not lost

    # listed in the reports, open, with the verdict, for an operator to restore or remove
    (report,) = core.store.list_reports(status="open", uid="demo")
    assert (report.avatar_id, report.reason, report.filed_by) == (hidden.id, "moderation", "moderation")
    assert report.moderation == verdict.model_dump(mode="json") and report.prompt == stored.prompt

    # the ledger: one paid line carrying the verdict, and the fallback served
    (paid,) = _paid(core, "demo")
    assert paid.moderation == verdict and paid.avatar_id == hidden.id and paid.cost_usd == out.cost_usd
    served = [e for e in core.store.events(uid="demo") if e.kind == "blocked"]
    assert served and "image moderation flagged" in (served[-1].detail or "")

    # the moderation endpoint saw the very bytes that were paid for, as an image
    (check,) = openai_env.image_moderations
    assert check["flagged"] and check["model"] == "omni-moderation-latest"
    assert check["sha256"] == openai_env.ledger[0]["sha256"]

    # asked again (same request, or the nightly evolve): no shown avatar yet, so the fallback
    # again; nothing bought
    again = core.generate(["demo"], "month").outcomes[0]
    assert again.status == "fallback" and again.record is None
    assert len(openai_env.ledger) == 1 and len(openai_env.image_moderations) == 1
    assert core.generate(["demo"], "month", dry_run=True).outcomes[0].status != "planned"
    # evolve makes the missing anchor (a first avatar, shown); the month is not bought again
    evolved = {o.target: o for o in core.evolve("demo").outcomes}
    assert "month" not in evolved or evolved["month"].status in ("fallback", "degraded")
    assert [e.target for e in _paid(core, "demo")].count("month") == 1
    assert hidden.id not in [r.id for r in core.timeline("demo")]

    figures = core.usage()
    assert figures.moderation_flagged == 1 and figures.generations == len(openai_env.ledger)


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_a_clean_image_is_shown_with_its_verdict(make_core, openai_env, tmp_path, request, store):
    core = _core(make_core, openai_env, tmp_path, request, store)
    report = core.generate(["demo"], "month")
    out = report.outcomes[0]
    assert out.status == "generated" and out.record is not None and out.hidden is None
    stored = core.store.get_avatar("demo", out.record.id)
    assert stored is not None and stored.status == "ok"
    assert stored.moderation is not None and stored.moderation.verdict == "clean"
    assert stored.moderation.categories == [] and stored.moderation.checked_at == NOW
    assert [r.id for r in core.timeline("demo")] == [stored.id]
    (paid,) = _paid(core, "demo")
    assert paid.moderation == stored.moderation
    (check,) = openai_env.image_moderations
    assert not check["flagged"] and check["sha256"] == openai_env.ledger[0]["sha256"]
    assert report.moderation_counts() == {"clean": 1} and report.notes() == []
    assert core.usage().moderation_flagged == 0


def test_a_failed_check_keeps_the_paid_image_hidden_until_the_next_run(make_core, openai_env, tmp_path, request):
    core = _core(make_core, openai_env, tmp_path, request, "local")
    attempts = 4  # make_config_dir's retry.max_attempts: every attempt of the check fails
    openai_env.moderation_faults.extend(Fault(500) for _ in range(attempts))
    first = core.generate(["demo"], "month")
    out = first.outcomes[0]
    assert out.status in ("fallback", "degraded") and out.record is None
    assert out.moderation is not None and out.moderation.verdict == "pending"
    assert "moderation unavailable (500" in (out.reason or "")
    assert any("checked again by the next run" in n for n in first.notes())
    # nothing visible; the paid image waits in the spool; its spend is booked once, now
    assert core.store.list_avatars("demo") == [] and core.timeline("demo") == []
    spooled = core.spool.get("demo", out.request_key)
    assert spooled is not None and spooled.result is not None
    (paid,) = _paid(core, "demo")
    assert paid.moderation is not None and paid.moderation.verdict == "pending"
    billed = paid.cost_usd
    assert billed > 0 and len(openai_env.ledger) == 1

    # the next run checks it (the endpoint is back) and stores it: never bought twice
    second = core.generate(["demo"], "month")
    again = second.outcomes[0]
    assert again.status in ("ingested", "cached") and again.record is not None
    stored = core.store.get_avatar("demo", again.record.id)
    assert stored is not None and stored.status == "ok" and stored.moderation.verdict == "clean"
    assert len(openai_env.ledger) == 1
    assert [c["answered"] for c in openai_env.image_moderations] == [False] * attempts + [True]
    assert core.spool.get("demo", out.request_key) is None
    # spend counted once; the verdict reached later has a line of its own, at no cost
    assert [e.cost_usd for e in _paid(core, "demo")] == [billed]
    (later,) = [e for e in core.store.events(uid="demo") if e.kind == "moderation"]
    assert later.moderation == stored.moderation and later.cost_usd == 0 and later.avatar_id == stored.id
    assert core.usage().cost_usd == pytest.approx(billed)


def test_a_failed_check_then_a_flag_hides_the_image_next_run(make_core, openai_env, tmp_path, request):
    core = _core(make_core, openai_env, tmp_path, request, "local")
    openai_env.unsafe_next = 1
    openai_env.moderation_faults.extend(Fault(503) for _ in range(4))
    assert core.generate(["demo"], "month").outcomes[0].moderation.verdict == "pending"
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "blocked" and out.record is None and out.hidden is not None
    assert core.store.get_avatar("demo", out.hidden.id).hidden_by is not None and core.timeline("demo") == []
    assert len(openai_env.ledger) == 1
    assert core.usage().moderation_flagged == 1


def test_the_offline_provider_skips_moderation_and_says_so(make_core):
    core = make_core(now=lambda: NOW)  # the local (offline) provider
    report = core.generate(["demo"], "month")
    out = report.outcomes[0]
    assert out.status == "generated" and out.record is not None
    verdict = core.store.get_avatar("demo", out.record.id).moderation
    assert verdict is not None and verdict.verdict == "skipped" and verdict.model is None
    assert "local provider has no image moderation" in (verdict.detail or "")
    assert report.summary()["moderation"] == {"skipped": 1}
    assert report.summary()["notes"] == ["image moderation skipped for 1 image(s): " + verdict.detail]
    assert [r.id for r in core.timeline("demo")] == [out.record.id]  # shown
    assert core.usage().moderation_skipped == 1


def test_moderation_turned_off_is_skipped_and_said(make_core, openai_env, tmp_path, request):
    core = _core(make_core, openai_env, tmp_path, request, "local", {"image_moderation": {"enabled": False}})
    openai_env.unsafe_next = 1  # nobody looks: it is shown, and the verdict says why
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.moderation.verdict == "skipped"
    assert "turned off" in out.moderation.detail and openai_env.image_moderations == []


def test_prompt_moderation_stays_available_beside_image_moderation(make_core, openai_env, tmp_path, request):
    core = _core(make_core, openai_env, tmp_path, request, "local", {"moderation": {"enabled": True}})
    out = core.generate(["demo"], "month").outcomes[0]
    assert out.status == "generated" and out.moderation.verdict == "clean"
    assert openai_env.moderation_requests  # the free text was screened (text input)
    assert len(openai_env.image_moderations) == 1  # and the image checked (image input)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"enabled": True, "modle": "x"}, "modle"),
        ({"enabled": "yes"}, "enabled"),
        ({"model": ""}, "model"),
    ],
)
def test_image_moderation_settings_are_validated(tmp_path, value, words):
    cfg = make_config_dir(tmp_path, {"image_moderation": value})
    with pytest.raises(ConfigError) as err:
        _ = ConfigSet(cfg).limits
    assert "limits.yaml" in err.value.message and words in err.value.message


def test_the_shipped_setting_is_on_with_the_omni_model(tmp_path):
    cfg = make_config_dir(tmp_path)
    shipped = yaml.safe_load((cfg / "limits.yaml").read_text())["image_moderation"]
    assert shipped == {"enabled": True, "model": "omni-moderation-latest"}


def test_the_api_answers_a_flagged_image_with_the_fallback(serve_settings, live, auth_env, openai_env):
    server = live(serve_settings())
    store = server.service.core.store
    uid, token = new_user(auth_env, store)
    other, other_token = new_user(auth_env, store, "Bo")
    body = {"evolution_stage": "month", "progress_metrics": {"active_days": 31, "goals_completed": 4}}
    openai_env.unsafe_next = 1
    with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(token), timeout=60) as c:
        first = c.post("/avatar/generate", json={"user_id": uid, **body})
        assert first.status_code == 200, first.text
        made = first.json()
        assert made["is_fallback"] is True and made["status"] == "blocked" and made["cost"] > 0
        assert made["avatar_id"] is None and made["image_url"] is None
        assert "image moderation flagged: violence" in made["reason"]
        assert c.get(f"/avatar/user/{uid}").json() == []  # never listed
        again = c.post("/avatar/generate", json={"user_id": uid, **body}).json()
        assert again["is_fallback"] is True and again["avatar_id"] is None and again["cost"] == 0
    (record,) = store.list_avatars(uid)
    assert record.hidden_by is not None and record.moderation is not None
    assert record.moderation.verdict == "flagged" and record.moderation.categories == FLAGGED_FOR
    assert len(openai_env.ledger) == 1
    with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(other_token), timeout=60) as c:
        clean = c.post("/avatar/generate", json={"user_id": other, **body}).json()
        assert clean["is_fallback"] is False and clean["status"] == "generated" and clean["image_url"]
    assert store.get_avatar(other, clean["avatar_id"]).moderation.verdict == "clean"


def test_doctor_says_whether_image_moderation_is_on(make_core, openai_env, tmp_path, request, data_dir):
    """One doctor row: on with the model for a provider that moderates images, not available with
    the offline renderer, a warning when limits.image_moderation turns it off. No check is sent."""

    def row(core):
        rows = [c for c in core.doctor() if c["check"] == "image moderation"]
        assert len(rows) == 1, rows
        return rows[0]

    on = row(_core(make_core, openai_env, tmp_path / "on", request, "local"))
    assert on["status"] == "ok" and on["detail"].startswith("on: ")
    assert "omni-moderation-latest (openai)" in on["detail"]
    turned_off = {"image_moderation": {"enabled": False}}
    off = row(_core(make_core, openai_env, tmp_path / "off", request, "local", turned_off))
    assert off["status"] == "warn" and off["detail"].startswith("off (limits.image_moderation)")
    assert "enabled: true" in off["fix"]
    offline = row(make_core(now=lambda: NOW))
    assert offline["status"] == "ok" and "not available with the local provider" in offline["detail"]
    assert openai_env.image_moderations == []  # the doctor sends no image anywhere

    import json

    from typer.testing import CliRunner

    from mirror_cli.cli.app import app

    res = CliRunner().invoke(app, ["doctor", "--json", "--data-dir", str(data_dir)])
    items = {c["check"]: c for c in json.loads(res.stdout)["items"]}
    assert items["image moderation"]["detail"] == offline["detail"]

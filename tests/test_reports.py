"""Reporting avatars (issue #19 item 3): the store's reports concern on both stores (one contract),
the core (mirror_cli/reporting.py: hiding, the daily limit, resolving, what a hidden avatar is
never served as), the API (POST /api/v1/avatar/{id}/report on the emulators), the operators'
commands (mirror reports list|show|resolve) and usage's counts."""

# ruff: noqa: F401, F811 (the serve fixtures are imported by name)

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import avatar_record
from serve_support import auth_env, bearer, live, new_user, serve_settings

from mirror_cli.errors import NotFoundError, ReportLimitError, UnknownReportError, UsageError
from mirror_cli.models import AvatarRecord, Persona
from mirror_cli.planner import shown
from mirror_cli.reporting import file_report, file_system_report, new_report, resolve_report, show_report
from mirror_cli.selection import select_avatar
from mirror_cli.stores.base import Selection, Store
from mirror_cli.stores.reports import ReportLimitReached, ReportStore, report_id

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _avatar(store: Store, uid: str = "u1", aid: str = "a1", minutes: int = 0, target: str = "month") -> AvatarRecord:
    ref, thumb = store.put_image(uid, f"{target}-{aid}", b"IMG" + aid.encode(), b"TH")
    record = avatar_record(
        uid,
        aid,
        target,
        image_path=ref,
        thumb_path=thumb,
        provider="openai",
        model="gpt-image-1",
        prompt=f"a portrait {aid}",
        created_at=NOW + timedelta(minutes=minutes),
    )
    store.put_avatar(record)
    return record


# ------------------------------------------------------------------------------ the store contract
def test_both_stores_implement_the_reports_protocol(store):
    assert isinstance(store, ReportStore)


def test_filing_hides_the_avatar_once_and_copies_what_it_was_made_from(store):
    store.put_user(Persona(id="u1", name="U"))
    a1 = _avatar(store)
    filed = file_report(store, a1, "offensive", note="not me at all", now=NOW, daily_limit=5)
    assert filed.created and filed.report.id == report_id("u1", "a1")
    r = filed.report
    assert (r.status, r.reason, r.note, r.prompt, r.model, r.stage) == (
        "open",
        "offensive",
        "not me at all",
        "a portrait a1",
        "gpt-image-1",
        "month",
    )
    assert store.get_avatar("u1", "a1").hidden_by == r.id
    assert not shown(store.get_avatar("u1", "a1"))
    again = file_report(store, a1, "scary", now=NOW + timedelta(minutes=1), daily_limit=5)
    assert not again.created and again.report.reason == "offensive"  # a repeat is the same report
    assert [x.id for x in store.list_reports()] == [r.id]
    assert store.get_report(r.id) == r


def test_the_daily_limit_is_kept_in_the_store_per_user_and_day(store, tmp_path):
    store.put_user(Persona(id="u1", name="U"))
    avatars = [_avatar(store, aid=f"a{i}", minutes=i) for i in range(4)]
    for a in avatars[:2]:
        file_report(store, a, "other", now=NOW, daily_limit=2)
    file_report(store, avatars[0], "other", now=NOW, daily_limit=2)  # a repeat is not counted
    with pytest.raises(ReportLimitError) as exc:
        file_report(store, avatars[2], "other", now=NOW + timedelta(hours=1), daily_limit=2)
    assert exc.value.retry_after_s == 11 * 3600  # until the next UTC day
    assert shown(store.get_avatar("u1", "a2"))  # a refused report hides nothing
    with pytest.raises(ReportLimitReached):  # the store itself refuses, whoever asks
        store.file_report(new_report(avatars[3], "other", at=NOW), "2026-11-24", 2)
    file_report(store, avatars[2], "other", now=NOW + timedelta(days=1), daily_limit=2)  # a new day
    file_system_report(store, avatars[3], verdict={"flagged": True})  # the tool's own: not limited
    assert store.report_counts() == {"open": 4}


def test_resolving_restores_or_removes_and_a_restored_report_can_be_filed_again(store):
    store.put_user(Persona(id="u1", name="U"))
    a1, a2 = _avatar(store), _avatar(store, aid="a2", minutes=5)
    r1 = file_report(store, a1, "offensive", now=NOW).report
    r2 = file_system_report(store, a2, verdict={"flagged": True, "categories": ["violence"]})
    assert r2.filed_by == "moderation" and r2.moderation == {"flagged": True, "categories": ["violence"]}
    assert r2.created_at == a2.created_at
    done = resolve_report(store, r1.id, "restore", by="operator:dana", note="fine", now=NOW + timedelta(hours=1))
    assert (done.status, done.resolved_by, done.resolution_note) == ("restored", "operator:dana", "fine")
    assert shown(store.get_avatar("u1", "a1"))
    gone = resolve_report(store, r2.id, "remove", by="operator:dana", note="violent", now=NOW + timedelta(hours=2))
    assert gone.status == "removed" and store.get_avatar("u1", "a2").hidden_by == r2.id
    assert store.image_size(a2.image_path) == 0 and store.image_size(a2.thumb_path) == 0  # the image is deleted
    assert store.get_report(r2.id).prompt == "a portrait a2"  # the report stays
    with pytest.raises(UsageError, match="cannot be shown again"):
        resolve_report(store, r2.id, "restore", by="operator:dana", note="oops", now=NOW)
    assert [r.id for r in store.list_reports(status="removed")] == [r2.id]
    assert [r.id for r in store.list_reports(status="open")] == []
    assert store.report_counts() == {"removed": 1, "restored": 1}
    reopened = file_report(store, a1, "scary", now=NOW + timedelta(days=1))
    assert reopened.created and reopened.report.status == "open"
    assert reopened.report.history[0]["status"] == "restored" and reopened.report.history[0]["resolved_by"]
    assert not shown(store.get_avatar("u1", "a1"))
    with pytest.raises(UnknownReportError):
        show_report(store, "rep-nothing")


def test_reports_are_listed_newest_first_by_user_and_status(store):
    for uid in ("u1", "u2"):
        store.put_user(Persona(id=uid, name=uid))
        for i in range(2):
            file_report(store, _avatar(store, uid, f"a{i}", minutes=i), "other", now=NOW + timedelta(minutes=i))
    assert [(r.user_id, r.avatar_id) for r in store.list_reports(uid="u2")] == [("u2", "a1"), ("u2", "a0")]
    assert len(store.list_reports(status="open", uid="u1")) == 2
    assert len(store.list_reports(limit=3)) == 3
    assert store.report_counts(since=NOW + timedelta(minutes=1)) == {"open": 2}
    assert store.report_counts(until=NOW + timedelta(minutes=1)) == {"open": 2}


def test_a_hidden_shown_avatar_hands_the_selection_to_the_previous_one_and_back(store):
    store.put_user(Persona(id="u1", name="U"))
    a1, a2 = _avatar(store), _avatar(store, aid="a2", minutes=5)
    store.put_selection(Selection("u1", "a2", "month", "month", NOW))
    r = file_report(store, a2, "not_me", now=NOW + timedelta(hours=1)).report
    assert store.get_selection("u1").avatar_id == "a1"
    resolve_report(store, r.id, "restore", by="operator:x", note="", now=NOW + timedelta(hours=2))
    assert store.get_selection("u1").avatar_id == "a2"  # the newest again
    assert a1.id == "a1"


def test_erasure_forgets_the_users_reports_and_counts(store):
    store.put_user(Persona(id="u1", name="U"))
    store.put_user(Persona(id="u2", name="U"))
    file_report(store, _avatar(store), "offensive", now=NOW, daily_limit=3)
    kept = file_report(store, _avatar(store, "u2"), "offensive", now=NOW, daily_limit=3).report
    assert store.forget_reports("u1") == 1
    assert [r.id for r in store.list_reports()] == [kept.id]
    assert store.forget_reports("u1") == 0


# ------------------------------------------------------------------------ what hidden means, served
def test_a_hidden_avatar_is_served_nowhere_and_never_bought_again_unasked(make_core, openai_env, fast_configs):
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs, now=lambda: NOW)
    core.generate(["maya"], "newReflection")
    core.generate(["maya"], "firstWeek")
    first, week = sorted(core.store.list_avatars("maya"), key=lambda r: r.target != "newReflection")
    bought = len(openai_env.requests)
    assert bought == 2 and [r.target for r in core.timeline("maya")] == ["newReflection", "firstWeek"]

    report = file_report(core.store, week, "offensive", now=NOW).report
    assert [r.id for r in core.timeline("maya")] == [first.id]  # the timeline (and the gallery built on it)
    again = core.generate(["maya"], "firstWeek").outcomes[0]  # a cache hit on the hidden one
    assert again.status == "degraded" and again.record.id == first.id and report.id in again.reason
    assert len(openai_env.requests) == bought  # nothing bought
    dry = core.generate(["maya"], "firstWeek", dry_run=True).outcomes[0]
    assert dry.status == "degraded" and dry.estimate_usd == 0
    with pytest.raises(NotFoundError, match="no avatar"):
        select_avatar(core, "maya", week.id)

    core.purge_cache(everything=True, user="maya")  # a hidden avatar is kept for the operator's decision
    assert core.store.get_avatar("maya", week.id) and core.store.read_image(week.image_path)

    resolve_report(core.store, report.id, "restore", by="operator:t", note="ok", now=NOW)
    back = core.generate(["maya"], "firstWeek").outcomes[0]
    assert back.status == "cached" and back.record.id == week.id
    assert len(openai_env.requests) == bought


# ----------------------------------------------------------------------------------------- the API
API = "/api/v1"


def _problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return resp.json()


def test_the_app_reports_an_avatar_on_the_emulators(serve_settings, live, auth_env, openai_env):
    server = live(serve_settings(limits={"reports_per_user_daily": 1}))
    store = server.service.core.store
    uid, token = new_user(auth_env, store)
    other, other_token = new_user(auth_env, store, "Bo")
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        stages = ("newReflection", "firstWeek")
        made = [c.post("/avatar/generate", json={"user_id": uid, "evolution_stage": s}) for s in stages]
        assert [m.status_code for m in made] == [200, 200], made[-1].text
        first, week = (m.json()["avatar_id"] for m in made)
        assert [a["avatar_id"] for a in c.get(f"/avatar/user/{uid}").json()] == [week, first]
        bought = len(openai_env.requests)

        path = f"/avatar/{week}/report"
        assert _problem(httpx.post(server.url + API + path, json={"reason": "offensive"}), 401)
        assert _problem(c.post(path, json={"reason": 5}), 422)  # a wrong type
        assert _problem(c.post(path, json={"reason": "offensive", "note": 3}), 422)
        assert _problem(c.post(path, json={"reason": "moderation"}), 422)  # the tool's own reason
        assert _problem(c.post(path, json={"reason": "other", "note": "x" * 501}), 422)
        assert _problem(c.post(path, json={"reason": "other", "user_id": other}), 403)
        assert _problem(c.post(path, headers=bearer(other_token), json={"reason": "other"}), 404)  # not theirs
        assert store.list_reports() == []  # nothing filed, nothing counted

        filed = c.post(path, json={"reason": "offensive", "note": "not me", "unknown": {"x": 1}})
        assert filed.status_code == 201, filed.text
        body = filed.json()
        assert (body["created"], body["hidden"], body["status"], body["avatar_id"]) == (True, True, "open", week)
        assert [a["avatar_id"] for a in c.get(f"/avatar/user/{uid}").json()] == [first]  # hidden at once
        again = c.post(path, json={"reason": "scary"})
        assert again.status_code == 200 and again.json()["report_id"] == body["report_id"]
        assert again.json()["created"] is False
        limited = _problem(c.post(f"/avatar/{first}/report", json={"reason": "other"}), 429)
        assert int(limited["retry_after_s"]) > 0 and "daily limit" in limited["detail"]
        assert [a["avatar_id"] for a in c.get(f"/avatar/user/{uid}").json()] == [first]

        # a new generate of the reported stage: the previous avatar, nothing bought
        served = c.post("/avatar/generate", json={"user_id": uid, "evolution_stage": "firstWeek"})
        assert served.status_code == 200, served.text
        assert served.json()["avatar_id"] == first and served.json()["status"] == "degraded"
        assert len(openai_env.requests) == bought

    report = store.get_report(body["report_id"])
    assert report.prompt and report.model and report.filed_by == "app" and report.note == "not me"
    resolve_report(store, report.id, "restore", by="operator:t", note="fine", now=NOW)
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        assert [a["avatar_id"] for a in c.get(f"/avatar/user/{uid}").json()] == [week, first]
    schema = httpx.get(server.url + "/openapi.json").json()
    op = schema["paths"][API + "/avatar/{avatar_id}/report"]["post"]
    assert {"201", "401", "403", "404", "422", "429"} <= set(op["responses"])


def test_app_users_cannot_write_or_read_reports_under_the_rules(firebase_env, emulators, tmp_path):
    from test_firestore_rules import AppClient  # the app's REST calls with an emulator token

    from mirror_cli.settings import load_settings
    from mirror_cli.stores.firebase import FirebaseStore

    store = FirebaseStore(load_settings({"data_dir": tmp_path / "data"}))
    try:
        store.put_user(Persona(id="u1", name="U"))
        r = file_report(store, _avatar(store), "offensive", now=NOW).report
    finally:
        store.close()
    app = AppClient(emulators.firestore.host, firebase_env["project"], "u1")
    assert app.get(f"reports/{r.id}") == 403
    assert app.create("reports", "rep-mine", {"user_id": "u1", "status": "open"}) == 403
    assert app.update(f"reports/{r.id}", {"status": "restored"}) == 403
    assert app.update("users/u1/avatars/a1", {"hidden_by": None}) == 403  # the app cannot unhide
    assert app.get("users/u1/avatars/a1") == 403  # hidden: not even its owner reads it directly
    assert app.get("users/u1") == 200  # the rules do run: the owner reads their profile


# ------------------------------------------------------------------------------------- the commands
def _cli(*args: str) -> tuple[int, dict]:
    import json

    from typer.testing import CliRunner

    from mirror_cli.cli.app import app

    res = CliRunner().invoke(app, [*args, "--json"])
    return res.exit_code, json.loads(res.stdout)


def test_operators_list_show_and_resolve_reports(tmp_path):
    from conftest import import_examples
    from typer.testing import CliRunner

    from mirror_cli.cli.app import app
    from mirror_cli.stores.local import LocalStore

    data = tmp_path / "data"
    import_examples(data)
    at = ["--data-dir", str(data)]
    for stage in ("newReflection", "firstWeek"):
        assert _cli("generate", "--user", "maya", "--stage", stage, *at)[0] == 0
    store = LocalStore(root=data)
    week = next(r for r in store.list_avatars("maya") if r.target == "firstWeek")
    rid = file_report(store, week, "scary", note="too dark", now=NOW).report.id
    store.close()

    code, out = _cli("reports", "list", "--status", "open", "--user", "maya", *at)
    assert code == 0 and out["summary"]["reports"] == 1
    assert (out["items"][0]["id"], out["items"][0]["avatar"], out["items"][0]["status"]) == (rid, week.id, "open")
    assert _cli("reports", "list", "--status", "closed", *at)[0] == 2
    assert _cli("reports", "list", "--user", "../x", *at)[0] == 2
    human = CliRunner().invoke(app, ["reports", "list", *at])
    assert human.exit_code == 0 and rid[:10] in human.stdout and "scary" in human.stdout
    code, shown_ = _cli("reports", "show", rid, *at)
    assert code == 0 and shown_["summary"]["prompt"] == week.prompt and shown_["summary"]["note"] == "too dark"
    code, out = _cli("reports", "show", "rep-unknown", *at)
    assert code == 2 and out["error"] == "UnknownReportError" and "mirror reports list" in out["hint"]
    assert _cli("reports", "resolve", rid, "--restore", "--remove", "--note", "x", *at)[0] == 2
    assert _cli("reports", "resolve", rid, "--remove", *at)[0] == 2  # a note is required
    assert _cli("reports", "resolve", "rep-unknown", "--remove", "--note", "x", *at)[0] == 2

    code, out = _cli("reports", "resolve", rid, "--remove", "--note", "too dark for a child", "--by", "dana", *at)
    assert code == 0 and out["summary"]["status"] == "removed" and out["summary"]["resolved_by"] == "operator:dana"
    assert not (data / week.image_path).exists() and not (data / week.thumb_path).exists()
    code, out = _cli("reports", "resolve", rid, "--restore", "--note", "oops", *at)
    assert code == 2 and "cannot be shown again" in out["message"]
    code, out = _cli("usage", *at)
    assert out["summary"]["reports"] == {"filed": 1, "open": 0, "resolved": 1, "restored": 0, "removed": 1}
    assert _cli("usage", "--user", "maya", *at)[1]["summary"]["reports"]["removed"] == 1  # one user's
    assert _cli("usage", "--user", "leo", *at)[1]["summary"]["reports"]["filed"] == 0
    human = CliRunner().invoke(app, ["usage", *at])
    assert "reports filed: 1 (0 open, 1 resolved: 0 restored, 1 removed)" in human.stdout
    # the removed stage is answered with the previous avatar, never bought again unasked
    code, out = _cli("generate", "--user", "maya", "--stage", "firstWeek", *at)
    assert out["jobs"][0]["status"] == "degraded" and out["jobs"][0]["avatar_id"] != week.id

"""Selection: the app records which avatar the user shows (PUT /api/v1/users/{id}/selected-avatar,
owner only, or directly under firestore.rules), gets I-There's line about it, and usage counts
selections per stage. Real stores, the Firestore/Auth emulators, a real uvicorn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import avatar_record
from serve_support import auth_env, bearer, live, new_user, serve_settings  # noqa: F401
from test_firestore_rules import DENIED, OK, seeded  # noqa: F401
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import NotFoundError, UnknownUserError
from mirror_cli.models import AvatarRecord
from mirror_cli.selection import select_avatar
from mirror_cli.stores.base import Selection

API = "/api/v1"
DAY = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_selections_current_and_counted_per_stage(store):
    from mirror_cli.models import Persona

    for uid in ("u1", "u2"):
        store.put_user(Persona(id=uid, name=uid))
    assert store.get_selection("u1") is None
    picks = [
        ("u1", "a1", "month", DAY),
        ("u1", "a2", "quarter", DAY + timedelta(hours=1)),
        ("u2", "b1", "month", DAY + timedelta(hours=2)),
        ("u2", "b2", "month", DAY + timedelta(days=1)),
        ("u1", "a0", "newReflection", DAY - timedelta(days=40)),
    ]
    for uid, aid, stage, at in picks:
        store.put_selection(Selection(uid, aid, stage, stage, at))
    current = store.get_selection("u1")
    assert current is not None and current.avatar_id == "a0"  # the latest choice made, not the latest date
    assert store.get_selection("u2").avatar_id == "b2" and store.get_selection("u2").stage == "month"
    assert store.selection_counts(DAY - timedelta(hours=12), DAY + timedelta(hours=12)) == {"month": 2, "quarter": 1}
    assert store.selection_counts(DAY - timedelta(hours=12), DAY + timedelta(days=2)) == {"month": 3, "quarter": 1}
    assert store.selection_counts(DAY - timedelta(hours=12), DAY + timedelta(days=2), "u1") == {
        "quarter": 1,
        "month": 1,
    }
    assert store.selection_counts(DAY + timedelta(days=5), DAY + timedelta(days=6)) == {}


def _avatar(core, uid: str, aid: str, stage: str, status: str = "ok") -> AvatarRecord:
    ref, _ = core.store.put_image(uid, f"{stage}-{aid}", b"webp " + aid.encode(), None)
    record = avatar_record(uid, aid, stage, request_key=aid * 8, image_path=ref, status=status, cues=[])
    core.store.put_avatar(record)
    return record


def test_select_answers_ithere_and_usage_counts_it(make_core, data_dir):
    core = make_core(now=lambda: DAY)
    _avatar(core, "maya", "m1", "month")
    _avatar(core, "maya", "q1", "quarter")
    _avatar(core, "kenji", "k1", "month")
    chosen = select_avatar(core, "maya", "q1")
    assert chosen.evolution_stage == "quarter" and chosen.selected_at == DAY.isoformat()
    # maya's companion speaks in maya's voice about the quarter look
    assert "Quarter" in chosen.ithere_message and "Maya" in chosen.ithere_message
    assert "calm, knowing smile" in chosen.ithere_message and "{" not in chosen.ithere_message
    select_avatar(core, "maya", "m1")
    select_avatar(core, "kenji", "k1")
    assert core.store.get_selection("maya").avatar_id == "m1"
    assert core.usage(since=DAY.date(), until=DAY.date()).selections == {"month": 2, "quarter": 1}
    assert core.usage(since=DAY.date(), until=DAY.date(), user="maya").selections == {"month": 1, "quarter": 1}
    core.close()
    res = CliRunner().invoke(
        app, ["usage", "--since", "2026-11-24", "--until", "2026-11-24", "--data-dir", str(data_dir), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["summary"]["selections"] == {"month": 2, "quarter": 1}
    human = CliRunner().invoke(
        app, ["usage", "--since", "2026-11-24", "--until", "2026-11-24", "--data-dir", str(data_dir)]
    )
    assert "selections" in human.output and "month 2" in human.output


def test_only_a_shown_avatar_of_ones_own_can_be_selected(make_core):
    core = make_core(now=lambda: DAY)
    _avatar(core, "kenji", "k1", "month")
    _avatar(core, "maya", "hidden", "month", status="degraded")
    for uid, aid, error in (
        ("maya", "k1", NotFoundError),  # another user's avatar
        ("maya", "hidden", NotFoundError),  # not shown in the timeline
        ("maya", "nope", NotFoundError),
        ("nobody", "k1", UnknownUserError),
        ("maya", "x" * 500, NotFoundError),
    ):
        with pytest.raises(error):
            select_avatar(core, uid, aid)
    assert core.store.get_selection("maya") is None
    assert core.usage(since=DAY.date(), until=DAY.date()).selections == {}


def test_put_selected_avatar_owner_only(serve_settings, live, auth_env):  # noqa: F811
    server = live(serve_settings())
    core = server.service.core
    uid, token = new_user(auth_env, core.store)
    other, other_token = new_user(auth_env, core.store, "Bo")
    _avatar(core, uid, "av1", "twoWeeks")
    url = f"/users/{uid}/selected-avatar"
    with httpx.Client(base_url=server.url + API, timeout=30) as c:
        assert c.put(url, json={"avatar_id": "av1"}).status_code == 401
        assert c.put(url, json={"avatar_id": "av1"}, headers=bearer(other_token)).status_code == 403
        bad = c.put(url, json={"avatar_id": "../x"}, headers=bearer(token))
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert c.put(url, json={"avatar_id": "av1", "x": 1}, headers=bearer(token)).status_code == 422
        missing = c.put(url, json={"avatar_id": "nope"}, headers=bearer(token))
        assert missing.status_code == 404 and "avatar_id" in missing.json()["fix"]
        ok = c.put(url, json={"avatar_id": "av1"}, headers=bearer(token))
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["avatar_id"] == "av1" and body["evolution_stage"] == "twoWeeks" and body["user_id"] == uid
        assert "Two Weeks" in body["ithere_message"]
    chosen = core.store.get_selection(uid)
    assert chosen is not None and chosen.avatar_id == "av1"
    assert core.store.get_selection(other) is None
    assert core.store.get_user(uid) is not None  # the profile still reads with the new field
    today = core.now().date()  # the server core's clock (the serve tests pin it)
    assert core.usage(since=today - timedelta(days=1), until=today + timedelta(days=1)).selections == {"twoWeeks": 1}


def test_rules_let_the_app_select_only_its_own_avatar(seeded, firebase_env, tmp_path):  # noqa: F811
    alice = seeded["alice"]
    pick = {"avatar_id": "a-alice", "selected_at": "2026-11-27T06:00:00+00:00"}
    assert alice.update("users/alice", {"selected_avatar": pick}) == OK
    assert alice.update("users/alice", {"selected_avatar": {**pick, "avatar_id": "a-bob"}}) == DENIED
    assert alice.update("users/alice", {"selected_avatar": {**pick, "avatar_id": "none"}}) == DENIED
    assert alice.update("users/alice", {"selected_avatar": {**pick, "extra": True}}) == DENIED
    assert alice.update("users/alice", {"selected_avatar": {**pick, "stage": "x" * 41}}) == DENIED
    assert alice.update("users/alice", {"selected_avatar": {"avatar_id": "a-alice"}}) == DENIED
    assert alice.update("users/alice", {"selected_avatar": "a-alice"}) == DENIED
    assert seeded["bob"].update("users/alice", {"selected_avatar": pick}) == DENIED
    # the tool reads what the app wrote, and the profile still parses
    from mirror_cli.settings import load_settings
    from mirror_cli.stores.firebase import FirebaseStore

    store = FirebaseStore(load_settings({"data_dir": tmp_path / "d2"}))
    try:
        chosen = store.get_selection("alice")
        assert chosen is not None and chosen.avatar_id == "a-alice"
        assert store.get_user("alice").name == "Alice"
    finally:
        store.close()

"""The app owns its user: PUT /api/v1/users/{id} creates or replaces the profile (owner only,
strict types, unknown fields ignored), and a signed-in user without one is told which call
makes it. Real uvicorn, the Auth emulator's tokens, the loopback OpenAI server; the profile
flow runs on the embedded store and on the Firestore emulator."""

from __future__ import annotations

import httpx
import pytest
from serve_support import auth_env, bearer, live, serve_settings

API = "/api/v1"
PROFILE = {
    "name": "Ada Lovelace",
    "age": 36,
    "appearance": {"skin": "light", "hair_style": "bob", "hair_color": "auburn", "glasses": "round"},
    "personality": ["curious", "precise"],
    "timezone": "Europe/London",
    "companion_voice": "wise",
}


def _generate(uid: str, days: int, goals: int, stage: str = "firstWeek") -> dict[str, object]:
    metrics = {"active_days": days, "goals_completed": goals, "major_achievement": None}
    return {"user_id": uid, "evolution_stage": stage, "progress_metrics": metrics}


def _images(server: object) -> int:
    return len([r for r in server.requests if "images" in r.get("path", "")])  # type: ignore[attr-defined]


def _problem(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = resp.json()
    return body


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_a_new_user_creates_their_profile_then_generates(serve_settings, live, auth_env, openai_env, store):
    server = live(serve_settings(store=store))
    uid, token = auth_env.sign_up()
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        # signed in, no profile yet: a clear 409 naming the call that makes one, nothing paid
        body = _problem(c.post("/avatar/generate", json=_generate(uid, 8, 1)), 409)
        assert f"PUT /api/v1/users/{uid}" in str(body["fix"]) and body["type"] == "urn:mirror:problem:profile-required"
        assert _problem(c.get(f"/users/{uid}"), 404)["type"] == "urn:mirror:problem:no-profile"
        made = c.put(f"/users/{uid}", json=PROFILE)
        assert made.status_code == 201, made.text
        assert made.headers["location"] == f"/api/v1/users/{uid}"
        shown = made.json()
        assert shown["created"] is True and shown["timezone"] == "Europe/London" and shown["companion_voice"] == "wise"
        assert shown["appearance"]["hair_style"] == "bob" and shown["personality"] == ["curious", "precise"]
        first = c.post("/avatar/generate", json=_generate(uid, 8, 1))
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "generated" and _images(openai_env) == 1
        # the same stage with new metrics: the stage's avatar, nothing paid
        again = c.post("/avatar/generate", json=_generate(uid, 12, 9)).json()
        assert again["cached"] is True and again["cost"] == 0 and again["avatar_id"] == first.json()["avatar_id"]
        assert _images(openai_env) == 1
        # a later PUT replaces the profile and keeps the progress the app reported
        updated = c.put(f"/users/{uid}", json={**PROFILE, "timezone": "Asia/Kathmandu", "name": None})
        assert updated.status_code == 200 and updated.json()["created"] is False
        assert updated.json()["name"] == "Ada Lovelace" and updated.json()["timezone"] == "Asia/Kathmandu"
        persona = server.service.core.store.get_user(uid)
        assert persona.progress.active_days == 12 and persona.timezone == "Asia/Kathmandu"
        # an explicit regenerate pays once more for the stage
        regen = c.post("/avatar/generate", json={**_generate(uid, 12, 9), "regenerate": True}).json()
        assert regen["status"] == "generated" and regen["avatar_id"] != first.json()["avatar_id"]
        assert _images(openai_env) == 2


def test_profile_bodies_are_strict_about_types_and_lenient_about_fields(serve_settings, live, auth_env):
    server = live(serve_settings(store="local"))
    uid, token = auth_env.sign_up()
    other, _ = auth_env.sign_up()
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        for bad, field in [
            ({**PROFILE, "age": "36"}, "age"),
            ({**PROFILE, "age": True}, "age"),
            ({**PROFILE, "timezone": "Mars/Olympus"}, "timezone"),
            ({**PROFILE, "timezone": "../../etc/passwd"}, "timezone"),
            ({**PROFILE, "companion_voice": "loud"}, "companion_voice"),
            ({**PROFILE, "appearance": {"skin": "green"}}, "appearance.skin"),
            ({**PROFILE, "personality": ["x" * 41]}, "personality"),
            ({**PROFILE, "personality": "curious"}, "personality"),
            ({**PROFILE, "name": "   "}, "name"),
        ]:
            body = _problem(c.put(f"/users/{uid}", json=bad), 422)
            assert field in str(body["detail"]), (field, body)
        assert "Unknown time zone" in str(_problem(c.put(f"/users/{uid}", json={"timezone": "Nowhere"}), 422)["detail"])
        assert server.service.core.store.get_user(uid) is None  # nothing was written
        # a newer app's extra fields are ignored, at the top and inside appearance
        newer = {**PROFILE, "pronouns": "she/her", "appearance": {**PROFILE["appearance"], "freckles": True}}
        assert c.put(f"/users/{uid}", json=newer).status_code == 201
        # another user's profile: 403; no token: 401
        _problem(c.put(f"/users/{other}", json=PROFILE), 403)
        _problem(c.get(f"/users/{other}"), 403)
        _problem(httpx.put(f"{server.url}{API}/users/{uid}", json=PROFILE, timeout=30), 401)
        assert server.service.core.store.get_user(other) is None
        assert c.get(f"/users/{uid}").json()["name"] == "Ada Lovelace"


def test_delete_erases_the_user_for_the_owner_only_and_is_repeatable(serve_settings, live, auth_env):
    """Erasure through the API (mirror_cli/erasure.py; the stores are covered by test_erasure.py)."""
    server = live(serve_settings(store="local"))
    uid, token = auth_env.sign_up()
    other, other_token = auth_env.sign_up()
    profile = PROFILE
    with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(token), timeout=60) as c:
        assert c.put(f"/users/{uid}", json=profile).status_code == 201
        with httpx.Client(base_url=server.url + "/api/v1", headers=bearer(other_token), timeout=60) as o:
            assert o.delete(f"/users/{uid}").status_code == 403  # not theirs
        assert c.get(f"/users/{uid}").status_code == 200
        gone = c.delete(f"/users/{uid}")
        assert gone.status_code == 200, gone.text
        assert gone.json()["removed"]["profile"] == 1 and gone.json()["already_erased"] is False
        assert c.get(f"/users/{uid}").status_code == 404
        again = c.delete(f"/users/{uid}").json()
        assert again["already_erased"] is True and again["removed"]["profile"] == 0
        assert c.put(f"/users/{uid}", json=profile).status_code == 404  # never re-created
    assert other

"""Slow jobs live in the store: a 202 from one instance is polled on another, and a job whose
instance stopped (its lease ran out) is taken over and finished by the instance polling it,
never paid twice. Real uvicorn servers, Auth emulator tokens, the loopback OpenAI server (held
answers force the races), on the embedded store and on the Firestore emulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from serve_support import auth_env, bearer, images_bought, live, new_user, poll_job, serve_settings

from mirror_cli.stores.base import AppJob

API = "/api/v1"
LIMITS = {"claims": {"lease_s": 2, "poll_s": 0.1, "wait_s": 60}}


def _generate(uid: str, stage: str = "month") -> dict[str, object]:
    return {"user_id": uid, "evolution_stage": stage, "progress_metrics": {"active_days": 31, "goals_completed": 4}}


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_202_on_one_instance_polled_on_another(serve_settings, live, auth_env, openai_env, store):
    settings = serve_settings(limits=LIMITS, store=store, serve_wait_s=0.2)
    a, b = live(settings), live(settings)
    uid, token = new_user(auth_env, a.service.core.store)
    _, stranger = new_user(auth_env, a.service.core.store, "Bo")
    openai_env.hold()
    with httpx.Client(headers=bearer(token), timeout=60) as c:
        accepted = c.post(a.url + API + "/avatar/generate", json=_generate(uid))
        assert accepted.status_code == 202, accepted.text
        url = accepted.headers["location"]
        assert url == accepted.json()["poll_url"]
        # B has never seen the job: it answers from the store, 202 while A holds a live lease
        running = c.get(b.url + url)
        assert running.status_code == 202 and running.json()["job_id"] == accepted.json()["job_id"]
        assert running.headers["retry-after"]
        # another user may not see it; an unknown id is a 404
        assert httpx.get(b.url + url, headers=bearer(stranger), timeout=30).status_code == 404
        assert c.get(b.url + API + "/jobs/" + "0" * 32).status_code == 404
        time.sleep(2.5)  # past a lease: A renews it, so B does not take the job over
        assert c.get(b.url + url).status_code == 202
        openai_env.release()
        done = poll_job(c, b.url + url, timeout_s=60)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "generated" and body["cost"] > 0 and body["evolution_stage"] == "month"
    assert images_bought(openai_env) == 1 and len(openai_env.ledger) == 1


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_a_job_whose_instance_stopped_is_finished_by_the_poller(serve_settings, live, auth_env, openai_env, store):
    settings = serve_settings(limits=LIMITS, store=store, serve_wait_s=0.2)
    b = live(settings)
    core = b.service.core
    uid, token = new_user(auth_env, core.store)
    # what an instance killed mid-job leaves in the store: a running job whose lease ran out
    past = datetime.now(UTC) - timedelta(seconds=30)
    params = {"user_id": uid, "target": "month", "progress": None, "regenerate": False}
    dead = AppJob("f" * 32, uid, "generate", "k", params, "gone:1:x", past, past)
    core.store.put_app_job(dead)
    with httpx.Client(headers=bearer(token), timeout=60) as c:
        first = c.get(f"{b.url}{API}/jobs/{dead.id}")
        assert first.status_code in (200, 202), first.text
        done = poll_job(c, f"{b.url}{API}/jobs/{dead.id}", timeout_s=60)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "generated"
        # the finished answer reaches the store (written just after the job ends, in the background),
        # and polled again (from any instance) it is the same
        deadline = time.monotonic() + 20
        while core.store.get_app_job(dead.id).state != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert core.store.get_app_job(dead.id).state == "done"
        assert c.get(f"{b.url}{API}/jobs/{dead.id}").json()["avatar_id"] == done.json()["avatar_id"]
    assert images_bought(openai_env) == 1


def test_a_finished_answer_polled_later_never_shows_an_avatar_hidden_since(serve_settings, live, auth_env, openai_env):
    """A 202 answered, the job finished, then the user reported the avatar it made: polling the
    job again (on the instance that ran it, from memory, and on another, from the store) answers
    the user's latest shown avatar instead, and the stage's fallback once none is left, as a
    generate that hits a hidden avatar in the cache does. Nothing is bought again."""
    settings = serve_settings(limits=LIMITS, store="local", serve_wait_s=0.2)
    a, b = live(settings), live(settings)
    store = a.service.core.store
    uid, token = new_user(auth_env, store)
    with httpx.Client(headers=bearer(token), timeout=60) as c:
        first = c.post(a.url + API + "/avatar/generate", json=_generate(uid, "newReflection"))
        if first.status_code == 202:
            first = poll_job(c, a.url + first.headers["location"], timeout_s=60)
        assert first.status_code == 200, first.text
        earlier = first.json()["avatar_id"]
        openai_env.hold()
        accepted = c.post(a.url + API + "/avatar/generate", json=_generate(uid, "firstWeek"))
        assert accepted.status_code == 202, accepted.text
        url = accepted.headers["location"]
        openai_env.release()
        done = poll_job(c, a.url + url, timeout_s=60)
        assert done.status_code == 200 and done.json()["status"] == "generated", done.text
        week = done.json()["avatar_id"]
        deadline = time.monotonic() + 20  # the answer reaches the store just after the job ends
        while store.get_app_job(accepted.json()["job_id"]).state != "done" and time.monotonic() < deadline:
            time.sleep(0.1)
        before = {server.url: c.get(server.url + url) for server in (a, b)}
        for answered in before.values():  # still shown: answered as it was
            assert answered.status_code == 200 and answered.json()["avatar_id"] == week, answered.text
        bought = images_bought(openai_env)

        reported = c.post(f"{a.url}{API}/avatar/{week}/report", json={"reason": "offensive"})
        assert reported.status_code == 201, reported.text
        for server in (a, b):  # from memory, and from the store
            again = c.get(server.url + url)
            assert again.status_code == 200, again.text
            body = again.json()
            assert body["avatar_id"] == earlier and body["status"] == "degraded", body
            assert body["is_fallback"] is False and body["image_url"] and body["evolution_stage"] == "newReflection"
            assert body["target"] == "firstWeek" and week in body["reason"]
            assert body["cost"] == before[server.url].json()["cost"]  # what the job was answered with

        assert c.post(f"{a.url}{API}/avatar/{earlier}/report", json={"reason": "not_me"}).status_code == 201
        for server in (a, b):
            body = c.get(server.url + url).json()
            assert body["status"] == "fallback" and body["is_fallback"] is True, body
            assert body["avatar_id"] is None and body["image_url"] is None
        assert [x["avatar_id"] for x in c.get(f"{b.url}{API}/avatar/user/{uid}").json()] == []
    assert images_bought(openai_env) == bought  # nothing bought again

"""A provider outage degrades like the design says: the app gets 200 with the stage's fallback
picture marked ``is_fallback`` (evolve: the user's latest shown avatar when they have one),
the job is published to the queue, and a worker makes the real one once the provider answers;
the app's next call gets it, paid once. Real uvicorn, Auth emulator tokens, the loopback OpenAI
server answering 5xx, the embedded store and queue. An oversize chunked body is 413."""

from __future__ import annotations

import httpx
from openai_server import Fault
from serve_support import auth_env, bearer, live, new_user, serve_settings

from mirror_cli.core import Mirror
from mirror_cli.server.service import worker_handlers

API = "/api/v1"


def _generate(uid: str, stage: str) -> dict[str, object]:
    return {"user_id": uid, "evolution_stage": stage}


def _outage(server: object, n: int = 20) -> None:
    server.push(*[Fault(503, "server_error", None, "The engine is currently overloaded.") for _ in range(n)])  # type: ignore[attr-defined]


def test_an_outage_answers_a_fallback_and_the_real_avatar_follows_through_the_queue(
    serve_settings, live, auth_env, openai_env
):
    settings = serve_settings(store="local", serve_worker="off")
    a = live(settings)
    uid, token = new_user(auth_env, a.service.core.store)
    with httpx.Client(headers=bearer(token), timeout=60) as c:
        _outage(openai_env)
        first = c.post(a.url + API + "/avatar/generate", json=_generate(uid, "newReflection"))
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["is_fallback"] is True and body["status"] == "fallback" and body["cost"] == 0
        assert body["avatar_id"] is None and "provider is unavailable" in body["reason"]
        assert not openai_env.ledger
        openai_env.faults.clear()  # the provider is back
        worker = Mirror(settings)
        try:
            stats = worker.work(until_empty=True, handlers=worker_handlers(worker))
        finally:
            worker.close()
        assert stats.acked == 1 and stats.outcomes == {"generated": 1} and len(openai_env.ledger) == 1
        real = c.post(a.url + API + "/avatar/generate", json=_generate(uid, "newReflection")).json()
        assert real["is_fallback"] is False and real["status"] == "cached" and real["image_url"]
        # a later stage during an outage: its fallback too, never a stage's avatar in its place
        _outage(openai_env)
        later = c.post(a.url + API + "/avatar/generate", json=_generate(uid, "month")).json()
        assert later["is_fallback"] is True and later["status"] == "fallback" and later["avatar_id"] is None
    assert len(openai_env.ledger) == 1


def _work(settings: object) -> object:
    worker = Mirror(settings)  # type: ignore[arg-type]
    try:
        return worker.work(until_empty=True, handlers=worker_handlers(worker))
    finally:
        worker.close()


def test_an_outage_during_evolve_answers_stand_ins_and_the_stages_follow_through_the_queue(
    serve_settings, live, auth_env, openai_env
):
    settings = serve_settings(store="local", serve_worker="off")
    a = live(settings)
    uid, token = new_user(auth_env, a.service.core.store)
    with httpx.Client(base_url=a.url + API, headers=bearer(token), timeout=60) as c:
        _outage(openai_env, 40)
        first = c.post("/avatar/evolve", json={"user_id": uid, "progress_metrics": {"active_days": 8}})
        assert first.status_code == 200, first.text
        body = first.json()
        # no avatar yet: the anchor and the stage reached, each the stage's fallback picture
        assert body["evolved"] is True and body["current_stage"] is None
        assert [(i["target"], i["status"], i["is_fallback"]) for i in body["avatars"]] == [
            ("newReflection", "fallback", True),
            ("firstWeek", "fallback", True),
        ]
        assert all(i["avatar_id"] is None and i["image_url"] is None and i["cost"] == 0 for i in body["avatars"])
        assert "provider is unavailable" in body["avatars"][0]["reason"] and not openai_env.ledger
        openai_env.faults.clear()  # the provider is back: a worker makes both stages, in order
        stats = _work(settings)
        assert stats.outcomes == {"generated": 2} and len(openai_env.ledger) == 2  # type: ignore[attr-defined]
        # a later milestone during an outage: the user's own latest avatar stands in, marked
        _outage(openai_env, 40)
        later = c.post("/avatar/evolve", json={"user_id": uid, "progress_metrics": {"active_days": 31}}).json()
        assert later["current_stage"] == "firstWeek" and len(later["avatars"]) == 1
        item = later["avatars"][0]
        assert (item["target"], item["status"], item["is_fallback"]) == ("month", "degraded", True)
        assert item["evolution_stage"] == "firstWeek" and item["image_url"] and item["avatar_id"]
        openai_env.faults.clear()
        assert _work(settings).outcomes == {"generated": 1}  # type: ignore[attr-defined]
        done = c.post("/avatar/evolve", json={"user_id": uid, "progress_metrics": {"active_days": 31}}).json()
        assert done == {"evolved": False, "current_stage": "month", "avatars": []}
    assert len(openai_env.ledger) == 3


def test_is_fallback_is_in_the_openapi_schema(serve_settings, live, auth_env):
    a = live(serve_settings(store="local", serve_worker="off"))
    schema = httpx.get(a.url + "/openapi.json", timeout=30).json()
    field = schema["components"]["schemas"]["AvatarResponse"]["properties"]["is_fallback"]
    assert field["type"] == "boolean" and field["default"] is False


def test_an_oversize_chunked_body_is_413_before_it_is_all_read(serve_settings, live, auth_env):
    a = live(serve_settings(store="local", serve_worker="off"))
    uid, token = new_user(auth_env, a.service.core.store)
    sent = 0

    def chunks():  # no Content-Length: Transfer-Encoding chunked, counted as it arrives
        nonlocal sent
        yield b'{"user_id": "' + uid.encode() + b'", "evolution_stage": "month", "pad": "'
        for _ in range(1000):
            sent += 1
            yield b" " * 8192
        yield b'"}'

    headers = {**bearer(token), "content-type": "application/json"}
    resp = httpx.post(a.url + API + "/avatar/generate", content=chunks(), headers=headers, timeout=60)
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["type"].endswith("too-large")

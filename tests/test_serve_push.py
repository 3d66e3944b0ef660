"""Pub/Sub push to the API service (POST /api/v1/queue/push): fail closed (refused unless
configured; a token of the push subscription's audience and service account, signed - unsigned
only against the emulator, allowed explicitly), and a pushed job is run within the request and
answered 204 only once its answer is stored; a redelivered push pays nothing."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from serve_support import auth_env, live, new_user, serve_settings

from mirror_cli.server.queued import APP_JOB
from mirror_cli.stores.base import AppJob
from mirror_cli.worker import job_message

PUSH = "/api/v1/queue/push"
AUDIENCE = "https://mirror-api.example.run.app/api/v1/queue/push"
ACCOUNT = "pubsub-push@my-app.iam.gserviceaccount.com"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _token(**claims: Any) -> str:
    now = int(time.time())
    body = {"aud": AUDIENCE, "iss": "https://accounts.google.com", "email": ACCOUNT, "email_verified": True}
    body.update({"iat": now, "exp": now + 600, **claims})
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(body)}."


def _envelope(body: dict[str, Any], key: str, attempt: int = 1) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(body).encode()).decode()
    message = {"data": data, "attributes": {"request_key": "-"}, "messageId": uuid.uuid4().hex, "orderingKey": key}
    return {"message": message, "subscription": "projects/p/subscriptions/mirror-jobs-push", "deliveryAttempt": attempt}


def _images(server: Any) -> int:
    return len([r for r in server.requests if "images" in r.get("path", "")])


@pytest.fixture
def pushed(serve_settings, live, auth_env, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")  # emulator mode: unsigned tokens

    def start(**overrides: Any) -> Any:
        flags = {"store": "local", "serve_worker": "off", "push_audience": AUDIENCE, "push_account": ACCOUNT}
        return live(serve_settings(**{**flags, **overrides}))

    return start


def test_push_fails_closed(pushed, monkeypatch):
    unconfigured = pushed(push_audience=None, push_account=None)
    envelope = _envelope(job_message("nobody", "month"), "nobody")
    auth = {"Authorization": f"Bearer {_token()}"}
    assert httpx.post(unconfigured.url + PUSH, json=envelope, headers=auth, timeout=30).status_code == 403
    server = pushed()

    def status(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(server.url + PUSH, json=envelope, headers=headers, timeout=30).status_code

    assert status(None) == 401
    assert status(_token(aud="https://elsewhere.example")) == 401
    assert status(_token(exp=int(time.time()) - 10)) == 401
    assert status(_token(iss="https://evil.example")) == 401
    assert status(_token(email="someone@evil.example")) == 403
    assert status(_token(email_verified=False)) == 403
    assert status("not-a-jwt") == 401
    # no emulator on this machine: the same unsigned token must be signed by Google, so refused
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST")
    assert status(_token()) == 401
    bad = httpx.post(server.url + PUSH, json={"message": {"data": "%%%"}}, timeout=30, headers=auth)
    assert bad.status_code in (401, 422)


def test_a_pushed_job_is_run_within_the_request_and_a_redelivery_pays_nothing(pushed, auth_env, openai_env):
    server = pushed()
    core = server.service.core
    uid, _ = new_user(auth_env, core.store)
    auth = {"Authorization": f"Bearer {_token()}"}
    done = httpx.post(server.url + PUSH, json=_envelope(job_message(uid, "month"), uid), headers=auth, timeout=120)
    assert done.status_code == 204, done.text
    assert [r.target for r in core.store.list_avatars(uid)] == ["month"] and _images(openai_env) == 1
    again = httpx.post(server.url + PUSH, json=_envelope(job_message(uid, "month"), uid, 2), headers=auth, timeout=120)
    assert again.status_code == 204 and _images(openai_env) == 1
    # a 202 job whose instance died: taken over and answered in the store before the 204
    past = datetime.now(UTC) - timedelta(hours=1)
    params = {"user_id": uid, "target": "firstWeek", "progress": None, "regenerate": False}
    dead = AppJob(uuid.uuid4().hex, uid, "generate", "k", params, "gone:1:x", past, past)
    core.store.put_app_job(dead)
    body = {"kind": APP_JOB, "job_id": dead.id, "user_id": uid, "job": "generate"}
    taken = httpx.post(server.url + PUSH, json=_envelope(body, uid), headers=auth, timeout=120)
    assert taken.status_code == 204, taken.text
    stored = core.store.get_app_job(dead.id)
    assert stored is not None and stored.state == "done" and stored.status == 200 and _images(openai_env) == 2


def test_a_push_that_cannot_finish_now_is_given_back(pushed, auth_env, openai_env):
    from openai_server import Fault

    server = pushed()
    uid, _ = new_user(auth_env, server.service.core.store)
    openai_env.push(*[Fault(503, "server_error", None, "overloaded") for _ in range(10)])
    auth = {"Authorization": f"Bearer {_token()}"}
    resp = httpx.post(server.url + PUSH, json=_envelope(job_message(uid, "month"), uid), headers=auth, timeout=120)
    openai_env.faults.clear()
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1  # Pub/Sub delivers it again
    assert not openai_env.ledger

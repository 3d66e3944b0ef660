"""mirror serve against real servers: uvicorn, the Firebase Auth emulator (real emulator ID tokens),
the Firestore and Storage emulators, and the loopback OpenAI server (whose ledger is the truth
about what was paid)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from serve_support import auth_env, bearer, live, new_user, serve_settings

from mirror_cli.errors import ConfigError

API = "/api/v1"
PROGRESS = {"active_days": 31, "goals_completed": 4, "major_achievement": None, "discovered_traits": ["curious"]}


def _generate(uid: str, stage: str = "month", **extra: object) -> dict[str, object]:
    return {"user_id": uid, "evolution_stage": stage, "progress_metrics": PROGRESS, **extra}


def _problem(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("urn:mirror:")
    return body


def test_tokens_and_ownership(serve_settings, live, auth_env, capsys):
    server = live(serve_settings())
    store = server.service.core.store
    uid, token = new_user(auth_env, store)
    other, _ = new_user(auth_env, store, "Bo")
    admin_uid, admin_token = auth_env.admin_user()
    with httpx.Client(base_url=server.url + API, timeout=30) as c:
        # no token, a malformed one, a forged one: 401 with the fix in the body
        body = _problem(c.get(f"/avatar/user/{uid}"), 401)
        assert "Authorization" in body["detail"] and "Bearer" in body["fix"]
        assert c.get(f"/avatar/user/{uid}").headers["www-authenticate"].startswith("Bearer")
        _problem(c.get(f"/avatar/user/{uid}", headers={"Authorization": "Basic abc"}), 401)
        _problem(c.get(f"/avatar/user/{uid}", headers=bearer("not-a-jwt")), 401)
        # a user reads their own avatars, not another user's (403), nor the usage figures
        assert c.get(f"/avatar/user/{uid}", headers=bearer(token)).json() == []
        assert "may not act on user" in _problem(c.get(f"/avatar/user/{other}", headers=bearer(token)), 403)["detail"]
        _problem(c.post("/avatar/generate", json=_generate(other), headers=bearer(token)), 403)
        _problem(c.get("/usage", headers=bearer(token)), 403)
        # the 'admin' custom claim (set with firebase-admin) may act on anyone
        assert c.get(f"/avatar/user/{other}", headers=bearer(admin_token)).status_code == 200
        usage = c.get("/usage", headers=bearer(admin_token))
        assert usage.status_code == 200 and "cost_usd" in usage.json()
        # the admin's own profile is not in the store: 409 naming the call that makes it, no other ids
        unknown = _problem(c.post("/avatar/generate", json=_generate(admin_uid), headers=bearer(admin_token)), 409)
        assert unknown["detail"] == f"User {admin_uid!r} has no profile yet." and uid not in str(unknown)
        assert f"PUT /api/v1/users/{admin_uid}" in unknown["fix"]
        # bad input: a problem naming the field, never a 500
        missing = c.post("/avatar/generate", json={"user_id": uid}, headers=bearer(token))
        assert "evolution_stage" in _problem(missing, 422)["detail"]
        _problem(c.post("/avatar/generate", json=_generate(uid, "someday"), headers=bearer(token)), 422)
        _problem(c.get("/nowhere"), 404)
        # the probes need no token
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"store": "ok", "provider": "ok"}}
    logged = capsys.readouterr().err
    assert '"status": 401' in logged and '"status": 200' in logged and f'"uid": "{uid}"' in logged
    assert token not in logged and admin_token not in logged


def test_generate_signed_url_then_cached(serve_settings, live, auth_env, openai_env):
    server = live(serve_settings())
    uid, token = new_user(auth_env, server.service.core.store)
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        first = c.post("/avatar/generate", json=_generate(uid))
        assert first.status_code == 200, first.text
        made = first.json()
        assert made["status"] == "generated" and made["cached"] is False and made["cost"] > 0
        assert made["evolution_stage"] == "month" and made["ithere_message"]
        assert "X-Goog-Signature=" in made["image_url"] and "X-Goog-Expires=" in made["image_url"]
        again = c.post("/avatar/generate", json=_generate(uid)).json()
        assert again["cached"] is True and again["cost"] == 0 and again["avatar_id"] == made["avatar_id"]
        page = c.get(f"/avatar/user/{uid}").json()
        assert [a["avatar_id"] for a in page] == [made["avatar_id"]]
        assert "X-Goog-Signature=" in page[0]["image_url"] and page[0]["evolution_stage"] == "month"
        assert page[0]["generation_time"] > 0
    assert len(openai_env.ledger) == 1


def test_daily_limit_answers_429_with_retry_after(serve_settings, live, auth_env, openai_env):
    server = live(serve_settings(limits={"per_user_daily": 1}))
    uid, token = new_user(auth_env, server.service.core.store)
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        assert c.post("/avatar/generate", json=_generate(uid, "month")).status_code == 200
        refused = c.post("/avatar/generate", json=_generate(uid, "quarter"))
        body = _problem(refused, 429)
        wait = int(refused.headers["retry-after"])
        assert 0 < wait <= 86400 and body["retry_after_s"] == wait and "per_user_daily" in body["detail"]
    assert len(openai_env.ledger) == 1


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _count_joins(jobs: Any) -> dict[str, int]:
    """Count the requests that joined a running job (a spy around the server's own Jobs.submit)."""
    counts = {"joined": 0}
    submit = jobs.submit

    def spy(*args: Any, **kwargs: Any) -> Any:
        job, joined = submit(*args, **kwargs)
        counts["joined"] += int(joined)
        return job, joined

    jobs.submit = spy
    return counts


def test_twenty_identical_taps_pay_once(serve_settings, live, auth_env, openai_env):
    """The paid answer is held until all twenty taps are in: nineteen join the running job (none
    can find a stored image yet), and one image is paid."""
    server = live(serve_settings())
    uid, token = new_user(auth_env, server.service.core.store)
    joins = _count_joins(server.service.jobs)
    openai_env.hold()

    async def taps() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
            sent = [asyncio.create_task(c.post("/avatar/generate", json=_generate(uid))) for _ in range(20)]
            await asyncio.to_thread(_until, lambda: joins["joined"] == 19, "19 taps joining the job")
            await asyncio.to_thread(openai_env.wait_for_requests, 1)
            assert not openai_env.ledger  # held: nothing answered (or stored) yet
            openai_env.release()
            return await asyncio.gather(*sent)

    answers = asyncio.run(taps())
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    bodies = [a.json() for a in answers]
    assert len({b["avatar_id"] for b in bodies}) == 1
    assert sum(1 for b in bodies if not b["cached"]) == 1
    assert sum(b["cost"] for b in bodies) == max(b["cost"] for b in bodies) > 0
    assert len(openai_env.requests) == 1 and len(openai_env.ledger) == 1
    assert openai_env.gate_timeouts == 0


def test_slow_generation_answers_202_then_the_job(serve_settings, live, auth_env, openai_env):
    """The image's answer is held: the request answers 202 and a job URL, which says 202 until
    the answer is released, then 200 with the image."""
    openai_env.hold()
    server = live(serve_settings(serve_wait_s=0.2))
    uid, token = new_user(auth_env, server.service.core.store)
    _, other_token = new_user(auth_env, server.service.core.store, "Bo")
    with httpx.Client(base_url=server.url, headers=bearer(token), timeout=60) as c:
        accepted = c.post(API + "/avatar/generate", json=_generate(uid))
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert accepted.headers["location"] == job["poll_url"] and int(accepted.headers["retry-after"]) >= 1
        _problem(c.get(job["poll_url"], headers=bearer(other_token)), 404)  # not someone else's job
        openai_env.wait_for_requests(1)
        assert c.get(job["poll_url"]).status_code == 202  # still held: still running
        openai_env.release()
        deadline = time.monotonic() + 180  # storing and signing, on a loaded machine
        while (polled := c.get(job["poll_url"])).status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert polled.status_code == 200 and "X-Goog-Signature=" in polled.json()["image_url"]
    assert len(openai_env.ledger) == 1 and openai_env.gate_timeouts == 0


def _png(size: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 120, 80)).save(buf, format="PNG")
    return buf.getvalue()


def test_photo_upload_limits_and_trilogy(serve_settings, live, auth_env, openai_env, tmp_path):
    import yaml

    settings = serve_settings()
    limits = yaml.safe_load((settings.config_dir / "limits.yaml").read_text())
    limits["photo"]["max_bytes"] = 300_000
    (settings.config_dir / "limits.yaml").write_text(yaml.safe_dump(limits))
    server = live(settings)
    uid, token = new_user(auth_env, server.service.core.store)
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        over = b"\x89PNG" + b"0" * 310_000  # over the photo limit, under the body limit
        body = _problem(c.post("/avatar/trilogy", data={"user_id": uid}, files={"photo": ("p.png", over)}), 413)
        assert "smaller" in body["fix"]
        huge = b"0" * 2_000_000  # over the body limit: refused before it is read
        _problem(c.post("/avatar/trilogy", data={"user_id": uid}, files={"photo": ("p.png", huge)}), 413)
        padded = b"{" + b" " * 100_000 + b"}"
        _problem(c.post("/avatar/generate", content=padded, headers={"content-type": "application/json"}), 413)
        notimage = c.post("/avatar/trilogy", data={"user_id": uid}, files={"photo": ("p.txt", b"hello")})
        assert "PNG, JPEG or WebP" in _problem(notimage, 422)["fix"]
        photo = {"photo": ("me.png", _png(64), "image/png")}
        # no consent on record: refused (403, naming the call that records it), nothing billed
        refused = _problem(c.post("/avatar/trilogy", data={"user_id": uid}, files=photo), 403)
        assert "consent" in refused["detail"] and f"/users/{uid}/consent" in refused["fix"]
        assert len(openai_env.ledger) == 0
        agreed = c.post(f"/users/{uid}/consent", json={"scope": "photo", "granted": True, "terms_version": "v3"})
        assert agreed.status_code == 200, agreed.text
        assert agreed.json()["recorded_by"] == "app" and agreed.json()["terms_version"] == "v3"
        made = c.post("/avatar/trilogy", data={"user_id": uid}, files=photo)
        assert made.status_code == 200, made.text
        avatars = made.json()["avatars"]
        assert len(avatars) == 3 and all("X-Goog-Signature=" in a["image_url"] for a in avatars)
        # withdrawn: the cache entries of the three photo requests go, the avatars stay, a photo is refused again
        withdrawn = c.post(f"/users/{uid}/consent", json={"scope": "photo", "granted": False, "terms_version": "v3"})
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["granted"] is False and withdrawn.json()["deleted"]["cache_entries"] == 3
        assert len(server.service.core.store.list_avatars(uid)) == 3
        _problem(c.post("/avatar/trilogy", data={"user_id": uid}, files=photo), 403)
    assert len(openai_env.ledger) == 3


def test_emulator_mode_is_refused_in_production(auth_env):
    from mirror_cli.server.auth import TokenVerifier
    from mirror_cli.settings import load_settings

    with pytest.raises(ConfigError) as err:
        TokenVerifier(load_settings({"environment": "production"}))
    assert "FIREBASE_AUTH_EMULATOR_HOST" in err.value.message and "production" in err.value.message


def test_request_rate_per_user_and_cors(auth_env, tmp_path):
    """Local store, in-process ASGI: the per-user request rate and the CORS allow-list."""
    from mirror_cli.server.app import create_app
    from mirror_cli.settings import load_settings

    settings = {"data_dir": tmp_path / "d", "serve_rate_per_minute": 3, "serve_cors_origins": "https://app.example"}
    app = create_app(load_settings(settings))
    uid, token = auth_env.sign_up()

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test" + API) as c:
            reads = [await c.get(f"/avatar/user/{uid}", headers=bearer(token)) for _ in range(4)]
            allowed = await c.options(
                f"/avatar/user/{uid}",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
            )
            other = await c.options(
                f"/avatar/user/{uid}",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
            )
            return [*reads, allowed, other]

    *reads, allowed, other = asyncio.run(calls())
    assert [r.status_code for r in reads] == [200, 200, 200, 429]
    limited = _problem(reads[-1], 429)
    assert 1 <= int(reads[-1].headers["retry-after"]) <= 60 and "3 requests a minute" in limited["detail"]
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers
    app.state.service.core.close()
    app.state.service.verifier.close()


def test_evolve_only_when_a_milestone_was_crossed(serve_settings, live, auth_env, openai_env):
    server = live(serve_settings())
    uid, token = new_user(auth_env, server.service.core.store)
    with httpx.Client(base_url=server.url + API, headers=bearer(token), timeout=60) as c:
        first = c.post("/avatar/evolve", json={"user_id": uid, "progress_metrics": {"active_days": 8}})
        assert first.status_code == 200, first.text
        evolved = first.json()
        assert evolved["evolved"] is True and evolved["current_stage"] == "firstWeek"
        # no avatar yet: the anchor (first stage) comes first, then the stage reached
        assert [a["evolution_stage"] for a in evolved["avatars"]] == ["newReflection", "firstWeek"]
        again = c.post("/avatar/evolve", json={"user_id": uid, "progress_metrics": {"active_days": 9}}).json()
        assert again == {"evolved": False, "current_stage": "firstWeek", "avatars": []}
    assert len(openai_env.ledger) == 2


def test_two_servers_one_paid_image(serve_settings, live, auth_env, openai_env):
    """Two server processes' worth of cores on one store: the store's job claim makes the second
    wait for the first's image instead of buying it again. The first's answer is held until the
    second has found the claim taken (so the second cannot simply find a stored image)."""
    settings = serve_settings()
    first, second = live(settings), live(settings)
    uid, token = new_user(auth_env, first.service.core.store)
    refused = {"n": 0}
    store = second.service.core.store
    claim = store.claim

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = claim(*args, **kwargs)
        refused["n"] += int(not result.acquired)
        return result

    store.claim = spy
    openai_env.hold()

    async def taps() -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=bearer(token), timeout=60) as c:
            one = asyncio.create_task(c.post(first.url + API + "/avatar/generate", json=_generate(uid)))
            await asyncio.to_thread(openai_env.wait_for_requests, 1)
            two = asyncio.create_task(c.post(second.url + API + "/avatar/generate", json=_generate(uid)))
            await asyncio.to_thread(_until, lambda: refused["n"] >= 1, "the second server finding the claim taken")
            openai_env.release()
            return [await one, await two]

    answers = asyncio.run(taps())
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert len({a.json()["avatar_id"] for a in answers}) == 1
    assert [a.json()["cached"] for a in answers] == [False, True]
    assert len(openai_env.requests) == 1 and len(openai_env.ledger) == 1
    assert openai_env.gate_timeouts == 0


def test_revoked_tokens_and_disabled_accounts_are_refused(auth_env, tmp_path):
    """auth_check_revoked: firebase-admin asks the Auth emulator about each new token."""
    from firebase_admin import auth

    from mirror_cli.server.app import create_app
    from mirror_cli.settings import load_settings

    app = create_app(load_settings({"data_dir": tmp_path / "d"}))
    revoked_uid, revoked_token = auth_env.sign_up()
    disabled_uid, disabled_token = auth_env.sign_up()
    time.sleep(1.1)  # revocation is to the second: the tokens must be older than it
    admin_app = app.state.service.verifier.app  # the server's own firebase-admin app, on the emulator
    auth.revoke_refresh_tokens(revoked_uid, app=admin_app)
    auth.update_user(disabled_uid, disabled=True, app=admin_app)

    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test" + API) as c:
            return [
                await c.get(f"/avatar/user/{revoked_uid}", headers=bearer(revoked_token)),
                await c.get(f"/avatar/user/{disabled_uid}", headers=bearer(disabled_token)),
            ]

    revoked, disabled = asyncio.run(calls())
    assert _problem(revoked, 401)["detail"] == "The ID token was revoked."
    assert _problem(disabled, 401)["detail"] == "This account is disabled."
    app.state.service.core.close()
    app.state.service.verifier.close()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _forged(token: str, **claims: object) -> str:
    """An emulator ID token (unsigned, as all of the emulator's are) with some claims changed."""
    header, _, signature = token.split(".")
    body = {**_claims(token), **claims}
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def _asgi_calls(app: Any, *calls: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test" + API) as c:
            return [await c.request(method, path, **kw) for method, path, kw in calls]

    return asyncio.run(run())


def test_other_users_expired_and_foreign_tokens_are_refused(auth_env, tmp_path):
    """evolve and trilogy for another user: 403 before any work; an expired token and a token of
    another project: 401 saying which. (The tokens are the emulator's, claims changed.)"""
    from mirror_cli.server.app import create_app
    from mirror_cli.settings import load_settings

    app = create_app(load_settings({"data_dir": tmp_path / "d"}))
    uid, token = auth_env.sign_up()
    other, _ = auth_env.sign_up()
    expired = _forged(token, exp=_claims(token)["iat"])  # issued when the user signed up, expired since
    foreign = _forged(token, aud="demo-another-project", iss="https://securetoken.google.com/demo-another-project")
    try:
        evolve, trilogy, late, alien, own = _asgi_calls(
            app,
            ("POST", "/avatar/evolve", {"json": {"user_id": other}, "headers": bearer(token)}),
            ("POST", "/avatar/trilogy", {"data": {"user_id": other}, "headers": bearer(token)}),
            ("GET", f"/avatar/user/{uid}", {"headers": bearer(expired)}),
            ("GET", f"/avatar/user/{uid}", {"headers": bearer(foreign)}),
            ("GET", f"/avatar/user/{uid}", {"headers": bearer(token)}),
        )
        for refused in (evolve, trilogy):
            assert f"may not act on user {other!r}" in _problem(refused, 403)["detail"]
        assert _problem(late, 401)["detail"] == "The ID token has expired."
        assert "not a valid Firebase ID token for this project" in _problem(alien, 401)["detail"]
        assert own.status_code == 200, own.text  # the untouched token is fine: the forgeries failed on their claims
        assert not (tmp_path / "d").exists() or not any((tmp_path / "d" / "avatars").rglob("*.png"))
    finally:
        app.state.service.core.close()
        app.state.service.verifier.close()


def test_sign_in_unavailable_is_503_with_retry_after(auth_env, tmp_path, monkeypatch):
    """Firebase Auth unreachable for the revocation check: 503 'sign-in unavailable' with a
    Retry-After, never a 401 that would sign the user out, nor a 500."""
    from firebase_auth import free_port

    from mirror_cli.server.app import create_app
    from mirror_cli.settings import load_settings

    uid, token = auth_env.sign_up()
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nobody listens there
    app = create_app(load_settings({"data_dir": tmp_path / "d"}))
    try:
        (answer,) = _asgi_calls(app, ("GET", f"/avatar/user/{uid}", {"headers": bearer(token)}))
        body = _problem(answer, 503)
        assert body["title"] == "Sign-in check unavailable" and "could not be reached" in body["detail"]
        assert int(answer.headers["retry-after"]) > 0
    finally:
        app.state.service.core.close()
        app.state.service.verifier.close()

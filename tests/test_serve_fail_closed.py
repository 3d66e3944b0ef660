"""Authentication fails closed: the Auth emulator's unsigned tokens are accepted only when
explicitly allowed, never in production and only from an emulator on this machine; and the
claims firebase-admin does not check against the emulator (exp, iat, aud, iss, sub) are
checked by us, on real emulator tokens and on hand-made ones."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from serve_support import auth_env, bearer, live, new_user, serve_settings

from mirror_cli.errors import ConfigError
from mirror_cli.server.auth import CLOCK_SKEW_S, TokenVerifier, check_claims
from mirror_cli.server.problems import ProblemError
from mirror_cli.settings import load_settings

PROJECT = "demo-p"


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    base = {
        "sub": "u1",
        "uid": "u1",
        "aud": PROJECT,
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "iat": now - 10,
        "exp": now + 3000,
    }
    return {**base, **over}


def _unsigned(claims: dict[str, object]) -> str:
    def part(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    ("host", "flags", "words"),
    [
        ("127.0.0.1:9099", {}, "MIRROR_AUTH_EMULATOR=1"),  # present but not allowed
        ("127.0.0.1:9099", {"auth_emulator": True, "environment": "production"}, "production"),
        ("auth.example.com:9099", {"auth_emulator": True}, "not an emulator on this machine"),
        ("10.0.0.7:9099", {"auth_emulator": True}, "not an emulator on this machine"),
    ],
)
def test_emulator_mode_needs_an_explicit_yes_and_a_loopback_host(monkeypatch, host, flags, words):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", host)
    with pytest.raises(ConfigError) as err:
        TokenVerifier(load_settings({"firebase_project": PROJECT, **flags}))
    assert words in err.value.message + " " + (err.value.hint or "")


@pytest.mark.parametrize("host", ["127.0.0.1:9099", "localhost:9099", "[::1]:9099"])
def test_loopback_emulators_are_accepted_when_allowed(monkeypatch, host):
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", host)
    verifier = TokenVerifier(load_settings({"firebase_project": PROJECT, "auth_emulator": True}))
    verifier.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": int(time.time()) - 86400},  # a day-old expiry
        {"exp": "9999999999"},  # not a number
        {"iat": int(time.time()) + CLOCK_SKEW_S + 600},  # issued in the future
        {"iat": True},
        {"aud": "another-project"},
        {"iss": "https://securetoken.google.com/another-project"},
        {"sub": ""},
        {"uid": "someone-else"},
    ],
)
def test_our_own_claim_checks(bad):
    check_claims(_claims(), PROJECT, time.time())  # the good token passes
    with pytest.raises(ProblemError) as err:
        check_claims(_claims(**bad), PROJECT, time.time())
    assert err.value.problem.status == 401


def test_forged_emulator_tokens_are_refused_by_a_running_server(serve_settings, live, auth_env):
    server = live(serve_settings(store="local"))
    uid, token = new_user(auth_env, server.service.core.store)
    project = auth_env.project
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as c:
        assert c.get(f"/avatar/user/{uid}", headers=bearer(token)).status_code == 200
        now = int(time.time())
        good = {
            "sub": uid,
            "user_id": uid,
            "aud": project,
            "iss": f"https://securetoken.google.com/{project}",
            "iat": now - 86400 - 60,
            "auth_time": now - 86400 - 60,
            "exp": now - 86400,  # a day old, and an admin claim on top
            "admin": True,
            "firebase": {"sign_in_provider": "password", "identities": {}},
        }
        for forged in (good, {**good, "exp": now + 3000, "iat": now, "aud": "other", "iss": "x"}):
            answer = c.get("/usage", headers=bearer(_unsigned(forged)))
            assert answer.status_code == 401, answer.text

"""The shapes the seed Flutter client reads: the avatar list is a JSON array (next page in the
Link header, or {items, next_cursor} with ?envelope=true) with generation_time on every item,
and a 405 names the allowed methods. Real uvicorn, emulator tokens, the loopback OpenAI server."""

from __future__ import annotations

import httpx
from serve_support import auth_env, bearer, live, new_user, serve_settings

API = "/api/v1"


def test_the_list_is_an_array_paged_by_link_headers(serve_settings, live, auth_env, openai_env):
    server = live(serve_settings(store="local"))
    uid, token = new_user(auth_env, server.service.core.store)
    with httpx.Client(base_url=server.url, headers=bearer(token), timeout=60) as c:
        made = []
        for stage in ("newReflection", "firstWeek", "twoWeeks"):
            r = c.post(API + "/avatar/generate", json={"user_id": uid, "evolution_stage": stage})
            assert r.status_code == 200, r.text
            made.append(r.json()["avatar_id"])
        first = c.get(f"{API}/avatar/user/{uid}", params={"limit": 2})
        assert first.status_code == 200 and isinstance(first.json(), list) and len(first.json()) == 2
        assert all(isinstance(a["generation_time"], float) and a["generation_time"] > 0 for a in first.json())
        link = first.headers["link"]
        assert link.endswith('>; rel="next"') and first.headers["x-next-cursor"] == first.json()[-1]["avatar_id"]
        second = c.get(link[1 : link.index(">")])
        assert [a["avatar_id"] for a in second.json()] == [made[0]] and "link" not in second.headers
        assert [a["avatar_id"] for a in first.json()] == made[:0:-1]  # newest first
        wrapped = c.get(f"{API}/avatar/user/{uid}", params={"limit": 2, "envelope": "true"}).json()
        assert [a["avatar_id"] for a in wrapped["items"]] == made[:0:-1] and wrapped["next_cursor"] == made[1]


def test_405_carries_allow(serve_settings, live, auth_env):
    server = live(serve_settings(store="local"))
    uid, token = new_user(auth_env, server.service.core.store)
    with httpx.Client(base_url=server.url, headers=bearer(token), timeout=30) as c:
        wrong = c.get(API + "/avatar/generate")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert wrong.headers["content-type"].startswith("application/problem+json")
        patched = c.patch(f"{API}/users/{uid}", json={})  # the profile has GET, PUT and DELETE, no PATCH
        assert patched.status_code == 405
        assert {m.strip() for m in patched.headers["allow"].split(",")} >= {"GET", "PUT", "DELETE"}


def test_the_readmes_dart_snippet_matches_the_openapi_schema(serve_settings, auth_env):
    """Every path the Dart snippet calls exists with its method, and every field it sends or
    reads is in the schema of that operation."""
    import re
    from pathlib import Path

    from mirror_cli.server.app import create_app

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    dart = next(b for b in re.findall(r"```dart\n(.*?)```", readme, re.S) if "avatar/generate" in b)
    app = create_app(serve_settings(store="local"))
    try:
        schema = app.openapi()
    finally:
        app.state.service.verifier.close()
    paths = schema["paths"]
    text = str(schema)
    calls = re.findall(r"http\.(get|post|put)\(Uri\.parse\('\$api(/api/v1/[^'?]*)", dart)
    assert len(calls) >= 2
    for method, path in calls:
        template = re.sub(r"\$\{?uid\}?", "{user_id}", path)
        assert template in paths and method in paths[template], (method, template)
    for key in re.findall(r"'(\w+)':", dart) + re.findall(r"\['(\w+)'\]", dart):
        if key in ("Authorization", "Content-Type", "retry-after", "link"):
            continue
        assert f"'{key}'" in text, key

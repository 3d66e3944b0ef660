"""firestore.rules executed by the official emulator, with requests made as real app users: unsigned
emulator ID tokens (``alg: none``, ``sub`` = uid) over the Firestore REST API. The tool itself
writes with admin rights (the emulator's ``Bearer owner``), as the Admin SDK does in production."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import avatar_record

from mirror_cli.models import Persona, Progress
from mirror_cli.settings import load_settings
from mirror_cli.stores.firebase import FirebaseStore


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def id_token(uid: str, project: str) -> str:
    """An unsigned Firebase ID token, which the emulator accepts as the user's credential."""
    now = int(time.time())
    claims = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "firebase": {"sign_in_provider": "password", "identities": {}},
    }
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, datetime):
        return {"timestampValue": v.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    if v is None:
        return {"nullValue": None}
    if isinstance(v, bool):
        return {"booleanValue": v}
    if isinstance(v, int):
        return {"integerValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"mapValue": {"fields": {k: _value(x) for k, x in v.items()}}}


class AppClient:
    """The Firestore REST API as the app would call it, signed in as ``uid`` (or anonymous)."""

    def __init__(self, host: str, project: str, uid: str | None) -> None:
        self.base = f"http://{host}/v1/projects/{project}/databases/(default)/documents"
        self.headers = {"Content-Type": "application/json"}
        if uid is not None:
            self.headers["Authorization"] = f"Bearer {id_token(uid, project)}"

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def get(self, path: str) -> int:
        return self._call("GET", f"{self.base}/{path}")

    def list(self, parent: str, collection: str) -> int:
        url = f"{self.base}/{parent}:runQuery" if parent else f"{self.base}:runQuery"
        return self._call("POST", url, {"structuredQuery": {"from": [{"collectionId": collection}]}})

    def list_shown(self, parent: str, collection: str) -> tuple[int, list[str]]:
        """The app's listing of its avatars: only those not hidden (``hidden_by`` null), newest
        first, as README "Privacy and safety" tells app developers to query. Returns the status
        and the ids of the documents answered."""
        query = {
            "from": [{"collectionId": collection}],
            "where": {"unaryFilter": {"op": "IS_NULL", "field": {"fieldPath": "hidden_by"}}},
            "orderBy": [{"field": {"fieldPath": "created_at"}, "direction": "DESCENDING"}],
        }
        body = json.dumps({"structuredQuery": query}).encode()
        req = urllib.request.Request(f"{self.base}/{parent}:runQuery", data=body, method="POST", headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                rows = json.loads(r.read())
                return int(r.status), [row["document"]["name"].rsplit("/", 1)[1] for row in rows if "document" in row]
        except urllib.error.HTTPError as e:
            return int(e.code), []

    def update(self, path: str, fields: dict[str, Any]) -> int:
        mask = "&".join(f"updateMask.fieldPaths={k}" for k in fields)
        body = {"fields": {k: _value(v) for k, v in fields.items()}}
        return self._call("PATCH", f"{self.base}/{path}?{mask}&currentDocument.exists=true", body)

    def create(self, collection: str, doc_id: str, fields: dict[str, Any]) -> int:
        body = {"fields": {k: _value(v) for k, v in fields.items()}}
        return self._call("POST", f"{self.base}/{collection}?documentId={doc_id}", body)

    def delete(self, path: str) -> int:
        return self._call("DELETE", f"{self.base}/{path}")


OK, DENIED = 200, 403


@pytest.fixture
def seeded(firebase_env, emulators, tmp_path):
    """Two users with an avatar each, and one document in every tool-only collection, written by
    the tool (admin)."""
    store = FirebaseStore(load_settings({"data_dir": tmp_path / "d"}))
    for uid in ("alice", "bob"):
        store.put_user(Persona(id=uid, name=uid.title(), progress=Progress(active_days=3)))
        store.put_avatar(avatar_record(uid, f"a-{uid}", "newReflection", created_at=datetime.now(UTC)))
    store.flush_ops()  # writes store_ops/{day}
    host, project = emulators.firestore.host, firebase_env["project"]
    yield {
        "alice": AppClient(host, project, "alice"),
        "bob": AppClient(host, project, "bob"),
        "anonymous": AppClient(host, project, None),
        "admin": store,
    }
    store.close()


def _progress(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "active_days": 4,  # the seeded users are at 3: one more day
        "goals_completed": 2,
        "major_achievement": None,
        "achievement_areas": [],
        "discovered_traits": ["curious"],
        "updated_at": "2026-11-27T06:00:00+00:00",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v != "DROP"}


def test_users_read_only_their_own_profile_and_avatars(seeded):
    alice, bob, anon = seeded["alice"], seeded["bob"], seeded["anonymous"]
    assert alice.get("users/alice") == OK
    assert alice.get("users/alice/avatars/a-alice") == OK
    assert alice.list_shown("users/alice", "avatars") == (OK, ["a-alice"])
    assert alice.get("users/bob") == DENIED
    assert alice.get("users/bob/avatars/a-bob") == DENIED
    assert alice.list("users/bob", "avatars") == DENIED
    assert alice.list_shown("users/bob", "avatars")[0] == DENIED
    assert alice.list("", "users") == DENIED  # no listing of everyone
    assert bob.get("users/bob") == OK
    for path in ("users/alice", "users/alice/avatars/a-alice", "store_ops/" + datetime.now(UTC).strftime("%Y-%m-%d")):
        assert anon.get(path) == DENIED


def test_hidden_avatars_are_not_readable_and_listing_asks_for_shown_ones(seeded):
    """A reported (or moderation-flagged) avatar carries hidden_by: its owner can no longer read
    it directly. Rules are not filters: an unconstrained listing of the avatars is refused as a
    whole (it could return a hidden one), the listing constrained to hidden_by == null is answered
    without the hidden ones. The tool writes hidden_by (null) on every avatar for that query."""
    alice, admin = seeded["alice"], seeded["admin"]
    newer = avatar_record("alice", "a-alice-2", "firstWeek", created_at=datetime.now(UTC) + timedelta(seconds=1))
    admin.put_avatar(newer)
    stored = admin.db.collection("users").document("alice").collection("avatars").document("a-alice").get()
    assert "hidden_by" in stored.to_dict() and stored.to_dict()["hidden_by"] is None  # written on every record
    assert alice.list_shown("users/alice", "avatars") == (OK, ["a-alice-2", "a-alice"])
    assert alice.get("users/alice/avatars/a-alice-2") == OK

    admin.db.collection("users").document("alice").collection("avatars").document("a-alice-2").update(
        {"hidden_by": "rep-x"}
    )
    assert alice.get("users/alice/avatars/a-alice-2") == DENIED
    assert alice.get("users/alice/avatars/a-alice") == OK
    assert alice.list("users/alice", "avatars") == DENIED  # the spec: an unfiltered listing is refused
    assert alice.list_shown("users/alice", "avatars") == (OK, ["a-alice"])
    # nor can the app make a hidden avatar the one it shows
    selection = {"avatar_id": "a-alice-2", "stage": "firstWeek", "selected_at": "2026-11-27T06:00:00Z"}
    assert alice.update("users/alice", {"selected_avatar": selection}) == DENIED
    assert alice.update("users/alice", {"selected_avatar": {**selection, "avatar_id": "a-alice"}}) == OK

    # restored: readable and listed again
    admin.db.collection("users").document("alice").collection("avatars").document("a-alice-2").update(
        {"hidden_by": None}
    )
    assert alice.get("users/alice/avatars/a-alice-2") == OK
    assert alice.list_shown("users/alice", "avatars") == (OK, ["a-alice-2", "a-alice"])


def test_users_update_only_their_progress_with_valid_values(seeded):
    alice = seeded["alice"]
    now = "2026-11-27T06:00:00+00:00"
    assert alice.update("users/alice", {"progress": _progress(), "updated_at": now}) == OK
    assert alice.update("users/bob", {"progress": _progress(), "updated_at": now}) == DENIED
    assert seeded["anonymous"].update("users/alice", {"progress": _progress(), "updated_at": now}) == DENIED
    bad = [
        _progress(active_days=-1),
        _progress(active_days=100_001),
        _progress(active_days="9"),
        _progress(active_days=9.5),
        _progress(active_days="DROP"),
        _progress(goals_completed=-3),
        _progress(major_achievement="x" * 501),
        _progress(discovered_traits=["t"] * 21),
        _progress(discovered_traits="curious"),
        {**_progress(), "is_admin": True},
    ]
    for progress in bad:
        assert alice.update("users/alice", {"progress": progress, "updated_at": now}) == DENIED, progress
    assert alice.update("users/alice", {"progress": _progress(), "updated_at": 5}) == DENIED
    # every other field of the profile, including the due fields the nightly planner queries
    for field, value in (("name", "Mallory"), ("latest_rank", 5), ("shard", 0), ("age", 30)):
        assert alice.update("users/alice", {field: value}) == DENIED, field
    assert alice.delete("users/alice") == DENIED
    assert alice.create("users", "carol", {"name": "Carol"}) == DENIED


def test_users_set_their_time_zone_as_a_bounded_name(seeded):
    """The app writes the user's IANA zone (the tool checks it against the zone database); it may
    reset next_window to 0 along with it, and set it to nothing else."""
    alice = seeded["alice"]
    assert alice.update("users/alice", {"timezone": "Asia/Kathmandu"}) == OK
    assert alice.update("users/alice", {"timezone": "America/Argentina/Buenos_Aires", "next_window": 0}) == OK
    assert alice.update("users/alice", {"timezone": "Etc/GMT+5"}) == OK
    assert alice.update("users/alice", {"timezone": None}) == OK  # back to the configured default
    assert alice.update("users/bob", {"timezone": "Asia/Tokyo"}) == DENIED
    for bad in ("x" * 65, "", "../etc/passwd", "Asia/Tokyo; drop", 9, ["Asia/Tokyo"], "/Asia"):
        assert alice.update("users/alice", {"timezone": bad}) == DENIED, bad
    assert alice.update("users/alice", {"timezone": "Asia/Tokyo", "next_window": 1}) == DENIED
    assert alice.update("users/alice", {"next_window": 2_000_000_000}) == DENIED


def test_nothing_else_is_writable_or_readable_by_clients(seeded):
    alice = seeded["alice"]
    assert alice.update("users/alice/avatars/a-alice", {"status": "ok"}) == DENIED
    assert alice.create("users/alice/avatars", "mine", {"status": "ok"}) == DENIED
    assert alice.delete("users/alice/avatars/a-alice") == DENIED
    for collection in (
        "avatar_cache",
        "ledger",
        "usage_daily",
        "usage_monthly",
        "limits_system",
        "limits_budget",
        "limits_users",
        "store_meta",
        "reservations",
        "runs",
        "store_ops",
    ):
        assert alice.create(collection, "alice", {"n": 1}) == DENIED, collection
        assert alice.list("", collection) == DENIED, collection


def test_list_elements_and_instants_are_checked_one_by_one(seeded):
    """The attacks that stopped a nightly run: one bad element, a date that is not one, giant traits."""
    alice = seeded["alice"]
    now = "2026-11-27T06:00:00.123Z"
    good = [
        _progress(achievement_areas=["health", "career"], discovered_traits=["t" * 100] * 20),
        _progress(updated_at="2026-11-27T06:00:00.123456+01:00"),
        _progress(updated_at=datetime.now(UTC)),
        _progress(updated_at=None),
    ]
    for progress in good:
        assert alice.update("users/alice", {"progress": progress, "updated_at": now}) == OK, progress
    assert alice.update("users/alice", {"progress": _progress(), "updated_at": datetime.now(UTC)}) == OK
    bad = [
        _progress(achievement_areas=[1]),
        _progress(achievement_areas=["ok", None]),
        _progress(achievement_areas=["ok"] * 19 + [5]),
        _progress(discovered_traits=["t" * 101]),
        _progress(discovered_traits=["x" * 50_000] * 19),
        _progress(discovered_traits=[{"a": 1}]),
        _progress(updated_at="not-a-date"),
        _progress(updated_at="2026-13-01T00:00:00Z"),
        _progress(updated_at="2026-11-27"),
        _progress(updated_at=5),
    ]
    for progress in bad:
        assert alice.update("users/alice", {"progress": progress, "updated_at": now}) == DENIED, progress
    for stamp in ("not-a-date", "2026-11-27T25:00:00Z", "", True):
        assert alice.update("users/alice", {"progress": _progress(), "updated_at": stamp}) == DENIED, stamp


def test_active_days_only_grow_and_no_faster_than_time(seeded):
    alice, admin = seeded["alice"], seeded["admin"]
    now = "2026-11-27T06:00:00Z"

    def write(days: int) -> int:
        return alice.update("users/alice", {"progress": _progress(active_days=days), "updated_at": now})

    assert write(100_000) == DENIED  # the jump that planned the halfYear avatar at once
    assert write(2) == DENIED  # never down
    assert write(4) == OK and write(5) == OK and write(5) == OK  # a day (or none) per write
    assert write(30) == DENIED
    # the tool's anchor says the user had 5 active days ten days ago: up to 5 + 10 + 1 today
    anchor = {"active_days": 5, "at": datetime.now(UTC) - timedelta(days=10, minutes=1)}
    admin.db.collection("users").document("alice").update({"progress_anchor": anchor})
    assert write(17) == DENIED
    assert write(16) == OK
    assert write(15) == DENIED  # and still never down
    # the anchor is the tool's: the app cannot move it
    assert alice.update("users/alice", {"progress_anchor": {"active_days": 99_999, "at": now}}) == DENIED


def test_a_profile_stays_small_whatever_the_app_writes():
    """Every field the app may write is bounded: the largest progress the rules accept is a few KB."""
    largest = _progress(
        active_days=100_000,
        goals_completed=100_000,
        major_achievement="m" * 500,
        achievement_areas=["a" * 100] * 20,
        discovered_traits=["t" * 100] * 20,
    )
    Progress.model_validate(largest)  # the model takes what the rules let through
    assert len(json.dumps(largest)) < 6_000

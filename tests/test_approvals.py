"""Approval states of fallback assets and flagged avatars: stored in every store, only approved
fallbacks served, a re-render keeps an approval when the image is the same and resets it when not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import avatar_record
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.errors import NotFoundError, UsageError
from mirror_cli.models import AvatarRecord
from mirror_cli.resources import shipped_fallback_dir
from mirror_cli.review import ReviewDesk, decide
from mirror_cli.stores.base import Review

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MONTH = ["dark-fro", "pale-long"]


def test_reviews_roundtrip_list_by_prefix_and_delete(store):
    a = decide(None, "fallback", "daymi/month/dark-fro", "a" * 64, "approved", "Ana", "warm light, good", NOW)
    b = decide(None, "fallback", "daymi/month/pale-long", "b" * 64, "rejected", "Ana", "eyes too small", NOW)
    c = decide(None, "fallback", "other/month/pale-long", "c" * 64, "draft", "Ben", None, NOW)
    f = decide(None, "avatar", "u_1/av-1", "d" * 64, "rejected", "Ben", None, NOW)
    for r in (a, b, c, f):
        store.put_review(r)
    assert [r.key for r in store.list_reviews("fallback", prefix="daymi/")] == [
        "daymi/month/dark-fro",
        "daymi/month/pale-long",
    ]
    assert len(store.list_reviews("fallback")) == 3 and [r.key for r in store.list_reviews("avatar")] == ["u_1/av-1"]
    got = store.get_review("fallback", "daymi/month/pale-long")
    assert got == b and got.by == "Ana" and got.at == NOW and got.note == "eyes too small"
    # a later decision replaces the record and keeps its history
    later = decide(got, "fallback", got.key, got.sha256, "approved", "Cleo", None, NOW + timedelta(hours=1))
    store.put_review(later)
    again = store.get_review("fallback", got.key)
    assert again.state == "approved" and again.by == "Cleo" and again.note == "eyes too small"
    assert [h["state"] for h in again.history] == ["rejected", "approved"] and again.approved_sha256 == "b" * 64
    store.delete_review("fallback", got.key)
    assert store.get_review("fallback", got.key) is None
    assert store.get_review("avatar", "nobody/none") is None


def test_the_shipped_set_is_approved_in_its_manifest():
    manifest = json.loads((shipped_fallback_dir() / "daymi" / "manifest.json").read_text())
    assert manifest["entries"]
    for e in manifest["entries"]:
        assert e["review"]["state"] == "approved" and e["review"]["sha256"] == e["sha256"], e["file"]


def _own(core) -> Path:
    return core.settings.fallback_dir / "daymi"


def _doctor(core) -> dict:
    return next(c for c in core.doctor() if c["check"] == "approvals")


def test_only_approved_fallbacks_are_served(make_core):
    core = make_core()
    maya = core.persona("maya")
    core.seed_fallbacks(only=["month"], variants=MONTH)
    # rendered but not reviewed: the shipped set serves, and doctor says why
    assert core.fallbacks.pick("month", maya).is_relative_to(shipped_fallback_dir())
    check = _doctor(core)
    assert check["status"] == "warn" and "month" in check["detail"] and "mirror review" in check["fix"]
    desk = ReviewDesk(core)
    assert {i.state for i in desk.items()} == {"draft"}
    desk.decide("fallback", "daymi/month/dark-fro", "approved", "Ana", "good")
    # one variant of two approved: the stage still comes from the shipped set
    assert core.fallbacks.pick("month", maya).is_relative_to(shipped_fallback_dir())
    desk.decide("fallback", "daymi/month/pale-long", "rejected", "Ana", "hair reads as a helmet")
    assert core.fallbacks.pick("month", maya).is_relative_to(shipped_fallback_dir())
    desk.decide("fallback", "daymi/month/pale-long", "approved", "Ben")
    assert core.fallbacks.pick("month", maya) == _own(core) / "month" / "dark-fro.webp"
    assert _doctor(core)["status"] == "ok"
    # a second process sees the decisions in the store
    other = make_core(examples=False)
    assert other.fallbacks.pick("month", maya) == _own(core) / "month" / "dark-fro.webp"
    rows = {i.variant: i for i in ReviewDesk(other).items(stage="month")}
    assert rows["pale-long"].by == "Ben" and rows["pale-long"].note == "hair reads as a helmet"


def test_rerender_keeps_the_approval_of_an_unchanged_image_and_resets_a_changed_one(make_core, fast_configs):
    core = make_core()
    core.seed_fallbacks(only=["month"], variants=MONTH)
    desk = ReviewDesk(core)
    for v in MONTH:
        desk.decide("fallback", f"daymi/month/{v}", "approved", "Ana")
    before = (_own(core) / "month" / "dark-fro.webp").read_bytes()
    # the same render again (forced): same bytes, the approval stands
    assert desk.rerender("daymi/month/dark-fro")["rendered"] == 1
    assert (_own(core) / "month" / "dark-fro.webp").read_bytes() == before
    assert {i.state for i in desk.items(stage="month")} == {"approved"}
    # the style changes: a new image, back to draft, the approved one kept for comparison
    style = fast_configs / "styles" / "daymi.yaml"
    data = yaml.safe_load(style.read_text())
    data["stages"]["month"]["face"]["mouth"] = "serious"
    style.write_text(yaml.safe_dump(data))
    changed = make_core(examples=False, config_dir=fast_configs)
    assert changed.seed_fallbacks(only=["month"], variants=["dark-fro"])["rendered"] == 1
    assert (_own(core) / "month" / "dark-fro.webp").read_bytes() != before
    cdesk = ReviewDesk(changed)
    states = {i.variant: i for i in cdesk.items(stage="month")}
    assert states["dark-fro"].state == "draft" and states["pale-long"].state == "approved"
    assert states["dark-fro"].has_previous
    assert cdesk.image("fallback", "daymi/month/dark-fro", "previous") == before
    assert changed.fallbacks.pick("month", changed.persona("maya")).is_relative_to(shipped_fallback_dir())
    assert _doctor(changed)["status"] == "warn"


def _flagged(core, uid: str, aid: str, status: str = "flagged") -> AvatarRecord:
    ref, _ = core.store.put_image(uid, f"month-{aid}", f"image {aid}".encode(), None)
    record = avatar_record(
        uid,
        aid,
        "month",
        request_key=aid * 8,
        image_path=ref,
        provider="openai",
        model="gpt-image-1.5",
        status=status,
        reason="palette: too cold" if status == "flagged" else None,
        created_at=NOW + timedelta(minutes=len(aid)),
    )
    core.store.put_avatar(record)
    return record


def test_flagged_avatars_queue_and_decisions(make_core):
    core = make_core(now=lambda: NOW)
    _flagged(core, "maya", "a1", status="ok")
    _flagged(core, "maya", "a22")
    desk = ReviewDesk(core)
    queue = desk.items("flagged")
    assert [(i.key, i.state, i.reason) for i in queue] == [("maya/a22", "draft", "palette: too cold")]
    assert queue[0].has_previous and desk.image("avatar", "maya/a22", "previous") == b"image a1"
    review = desk.decide("avatar", "maya/a22", "rejected", "Ana", "cold light")
    assert review.state == "rejected" and review.by == "Ana" and review.at == NOW
    stored = core.store.get_review("avatar", "maya/a22")
    assert stored.state == "rejected" and stored.note == "cold light" and stored.by == "Ana"
    # a note alone keeps the state
    desk.decide("avatar", "maya/a22", None, "Ben", "asked the user")
    stored = core.store.get_review("avatar", "maya/a22")
    assert stored.state == "rejected" and stored.note == "asked the user" and stored.by == "Ben"
    assert desk.items("flagged", state="rejected")[0].key == "maya/a22"


@pytest.mark.parametrize(
    ("kind", "key", "state", "by", "error"),
    [
        ("fallback", "daymi/month/dark-fro", "maybe", "Ana", UsageError),
        ("fallback", "daymi/month/dark-fro", "approved", "", UsageError),
        ("fallback", "daymi/../etc", "approved", "Ana", UsageError),
        ("fallback", "daymi/month/nope", "approved", "Ana", NotFoundError),
        ("avatar", "maya/none", "approved", "Ana", NotFoundError),
        ("avatar", "no/such/key", "approved", "Ana", UsageError),
    ],
)
def test_bad_decisions_change_nothing(make_core, kind, key, state, by, error):
    core = make_core()
    core.seed_fallbacks(only=["month"], variants=["dark-fro"])
    with pytest.raises(error):
        ReviewDesk(core).decide(kind, key, state, by)
    assert core.store.list_reviews("fallback") == [] and core.store.list_reviews("avatar") == []


def test_review_record_keeps_bounded_history():
    r: Review | None = None
    for i in range(40):
        r = decide(r, "fallback", "daymi/month/x", "a" * 64, "approved" if i % 2 else "rejected", "Ana", None, NOW)
    assert r is not None and len(r.to_dict()["history"]) == 20


def test_doctor_cli_names_the_waiting_stages(make_core, data_dir):
    core = make_core()
    core.seed_fallbacks(only=["quarter"], variants=["tan-bob"])
    res = CliRunner().invoke(app, ["doctor", "--data-dir", str(data_dir), "--json"])
    rows = {r["check"]: r for r in json.loads(res.stdout)["items"]}
    assert rows["approvals"]["status"] == "warn" and "quarter" in rows["approvals"]["detail"]

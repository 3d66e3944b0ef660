"""The review page (mirror review) in a real browser: Debian's Chromium driven by Playwright's
Python package with the system browser (never a downloaded one). Approve, reject and note with the
keyboard, filters, the flagged queue, re-render one asset; every decision checked in the store.
The screenshot in docs/review-page.png is taken here."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, avatar_record
from serve_support import LiveServer
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.review.app import create_review_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VARIANTS = ["brown-hijab", "dark-fro", "light-short", "medium-curly", "pale-long", "tan-bob"]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (make browser installs it)"
)


@pytest.fixture
def review_core(make_core):
    core = make_core(now=lambda: NOW)
    core.seed_fallbacks(only=["month", "quarter"], variants=VARIANTS)
    # a flagged avatar with an earlier good one of the same stage
    for aid, status, minute in (("m-ok", "ok", 0), ("m-flag", "flagged", 5)):
        png = (core.fallbacks.folders[1].folder / "month" / "dark-fro.webp").read_bytes()
        ref, _ = core.store.put_image("maya", f"month-{aid}", png if status == "ok" else png[::-1][:100] + png, None)
        core.store.put_avatar(
            avatar_record(
                "maya",
                aid,
                "month",
                request_key=aid * 16,
                image_path=ref,
                provider="openai",
                model="gpt-image-1.5",
                status=status,
                reason="palette: too cold" if status == "flagged" else None,
                created_at=NOW.replace(minute=minute),
            )
        )
    return core


@pytest.fixture
def page_server(review_core):
    server = LiveServer(create_review_app(review_core, "Ana"))
    yield server
    server.stop()


@pytest.fixture
def browser_page():
    assert CHROMIUM, "make browser installs Debian's chromium; CI must have it"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        yield page
        browser.close()


def _review(core, key, kind="fallback"):
    return core.store.get_review(kind, key)


def _wait_state(page, key, state):
    page.wait_for_function(
        "([k, s]) => { const c = document.querySelector(`.card[data-key='${k}'] .badge`);"
        " return c && c.textContent === s; }",
        arg=[key, state],
    )


@needs_browser
def test_keyboard_decisions_reach_the_store(page_server, review_core, browser_page):
    page = browser_page
    page.goto(page_server.url + "/")
    page.wait_for_selector(".card")
    assert page.locator(".card").count() == 12
    first, second = "daymi/month/brown-hijab", "daymi/month/dark-fro"
    assert page.locator(".card.sel").get_attribute("data-key") == first
    # the large view: this render beside the approved one served meanwhile (the shipped set)
    page.wait_for_function("() => [...document.querySelectorAll('.pair img')].every(i => i.complete && i.naturalWidth)")
    assert page.locator(".pair img").count() == 2
    page.keyboard.press("a")
    _wait_state(page, first, "approved")
    got = _review(review_core, first)
    assert got.state == "approved" and got.by == "Ana" and got.at == NOW
    # the selection moved on: R rejects the next one
    assert page.locator(".card.sel").get_attribute("data-key") == second
    page.keyboard.press("r")
    _wait_state(page, second, "rejected")
    assert _review(review_core, second).state == "rejected"
    # back with K, a note with N ... Enter: the state stays
    page.keyboard.press("k")
    assert page.locator(".card.sel").get_attribute("data-key") == second
    page.keyboard.press("n")
    page.keyboard.type("hair reads as a helmet")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.note').textContent === 'hair reads as a helmet'")
    got = _review(review_core, second)
    assert got.state == "rejected" and got.note == "hair reads as a helmet"
    # approve the rest of the month stage: the project's month assets are served from now on
    for v in VARIANTS[2:]:
        page.locator(f".card[data-key='daymi/month/{v}']").click()
        page.keyboard.press("a")
        _wait_state(page, f"daymi/month/{v}", "approved")
    page.locator(f".card[data-key='{second}']").click()
    page.keyboard.press("a")
    _wait_state(page, second, "approved")
    review_core.fallbacks.approver.forget()
    own = review_core.settings.fallback_dir / "daymi" / "month"
    assert review_core.fallbacks.pick("month", review_core.persona("maya")) == own / "dark-fro.webp"
    # filters: stage and state
    page.select_option("#f-stage", "quarter")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 6")
    page.select_option("#f-stage", "")
    page.select_option("#f-state", "approved")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 6")
    page.select_option("#f-state", "")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 12")
    # leave a mix of states for the screenshot: one quarter asset rejected with a note
    page.locator(".card[data-key='daymi/quarter/pale-long']").click()
    page.keyboard.press("n")
    page.keyboard.type("cold rim light on the left cheek")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.note').textContent.startsWith('cold rim')")
    page.keyboard.press("r")
    _wait_state(page, "daymi/quarter/pale-long", "rejected")
    page.locator(".card[data-key='daymi/quarter/medium-curly']").click()
    page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    page.screenshot(path=str(docs / "review-page.png"), full_page=True)
    # the flagged queue: the flagged avatar beside the earlier one
    page.locator(".tabs button[data-queue='flagged']").click()
    page.wait_for_function("() => document.querySelectorAll('.card').length === 1")
    page.keyboard.press("r")
    _wait_state(page, "maya/m-flag", "rejected")
    got = _review(review_core, "maya/m-flag", "avatar")
    assert got.state == "rejected" and got.by == "Ana"


@needs_browser
def test_rerender_link_renders_one_asset(page_server, review_core, browser_page):
    page = browser_page
    page.goto(page_server.url + "/")
    page.wait_for_selector(".card")
    page.keyboard.press("a")
    _wait_state(page, "daymi/month/brown-hijab", "approved")
    page.keyboard.press("k")
    runs_before = len(review_core.runs())
    page.keyboard.press("e")
    page.wait_for_function("() => document.getElementById('toast').textContent.startsWith('re-rendered')")
    assert len(review_core.runs()) == runs_before + 1
    # the same bytes again: the approval stands
    assert _review(review_core, "daymi/month/brown-hijab").state == "approved"
    _wait_state(page, "daymi/month/brown-hijab", "approved")


def test_writes_need_the_pages_token_and_bad_input_is_refused(page_server, review_core):
    with httpx.Client(base_url=page_server.url, timeout=30) as c:
        body = {"kind": "fallback", "key": "daymi/month/dark-fro", "state": "approved"}
        assert c.post("/api/decide", json=body).status_code == 403
        assert c.post("/api/decide", json=body, headers={"X-Review-Token": "guess"}).status_code == 403
        token = page_server.app.state.token
        assert token in c.get("/").text
        h = {"X-Review-Token": token}
        assert c.post("/api/decide", json={**body, "key": "../../etc"}, headers=h).status_code in (400, 422)
        assert c.post("/api/decide", json={**body, "state": "maybe"}, headers=h).status_code == 422
        missing = c.post("/api/decide", json={**body, "key": "daymi/month/nope"}, headers=h)
        assert missing.status_code == 404 and "seed-fallbacks" in missing.json()["fix"]
        assert c.get("/img/fallback/daymi/month/nope").status_code == 404
        assert _review(review_core, "daymi/month/dark-fro") is None
        ok = c.post("/api/decide", json=body, headers=h)
        assert ok.status_code == 200 and ok.json()["state"] == "approved"
        items = c.get("/api/items", params={"state": "approved"}).json()["items"]
        assert [i["key"] for i in items] == ["daymi/month/dark-fro"]


def test_cli_decisions_and_listing(review_core, data_dir, monkeypatch):
    run = CliRunner().invoke
    monkeypatch.setenv("MIRROR_REVIEWER", "Ben")
    res = run(app, ["review", "approve", "daymi/quarter/tan-bob", "--note", "lovely", "--data-dir", str(data_dir)])
    assert res.exit_code == 0, res.output
    got = _review(review_core, "daymi/quarter/tan-bob")
    assert got.state == "approved" and got.by == "Ben" and got.note == "lovely"
    res = run(app, ["review", "reject", "maya/m-flag", "--flagged", "--by", "Cleo", "--data-dir", str(data_dir)])
    assert res.exit_code == 0 and _review(review_core, "maya/m-flag", "avatar").by == "Cleo"
    res = run(app, ["review", "list", "--state", "approved", "--json", "--data-dir", str(data_dir)])
    assert [i["key"] for i in json.loads(res.stdout)["items"]] == ["daymi/quarter/tan-bob"]
    # bad input: a clear error and exit code, nothing changed
    bad = run(app, ["review", "approve", "daymi/quarter/none", "--data-dir", str(data_dir)])
    assert bad.exit_code not in (0, 1) and "seed-fallbacks" in bad.output
    bad = run(app, ["review", "list", "--state", "maybe", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2 and "draft" in bad.output
    bad = run(app, ["review", "--host", "0.0.0.0", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2 and "loopback" in bad.output


def _hide_some(core):
    """Beside the fixture's m-ok / m-flag: a month avatar between them hidden by the user's report
    (never the 'earlier avatar' shown beside m-flag), a flagged firstWeek avatar hidden by an open
    report, and one whose report removed it (its image deleted)."""
    from mirror_cli.reporting import file_report, resolve_report

    shipped = core.fallbacks.folders[1].folder / "month"
    for aid, target, status, minute, variant in (
        ("m-rep", "month", "ok", 3, "pale-long"),
        ("w-hid", "firstWeek", "flagged", 6, "tan-bob"),
        ("w-gone", "firstWeek", "flagged", 7, "light-short"),
    ):
        png = (shipped / f"{variant}.webp").read_bytes()  # each a real image of its own
        ref, _ = core.store.put_image("maya", f"{target}-{aid}", png, None)
        record = avatar_record(
            "maya", aid, target, request_key=aid * 20, image_path=ref, provider="openai", model="gpt-image-1.5",
            status=status, reason="odd hands" if status == "flagged" else None, created_at=NOW.replace(minute=minute),
        )  # fmt: skip
        core.store.put_avatar(record)
        rid = file_report(core.store, record, "offensive", now=NOW).report.id
        if aid == "w-gone":
            resolve_report(core.store, rid, "remove", by="operator:t", note="violent imagery", now=NOW)
    return {a: core.store.get_avatar("maya", a) for a in ("m-ok", "m-rep", "w-hid", "w-gone")}


def test_hidden_and_removed_avatars_are_marked_and_never_break_the_queue(page_server, review_core):
    """A flagged avatar hidden by a report is listed marked "hidden by report X"; one whose report
    removed it says its image is deleted, and asking for that image (or deciding on it) is a clear
    404, not a crash. A hidden avatar is never the earlier avatar shown beside a flagged one."""
    got = _hide_some(review_core)
    with httpx.Client(base_url=page_server.url, timeout=30) as c:
        items = {i["key"]: i for i in c.get("/api/items", params={"queue": "flagged"}).json()["items"]}
        assert set(items) == {"maya/m-flag", "maya/w-hid", "maya/w-gone"}  # m-rep is not flagged
        assert items["maya/m-flag"]["hidden"] is None and items["maya/m-flag"]["image_removed"] is False
        hid, gone = items["maya/w-hid"], items["maya/w-gone"]
        assert hid["hidden"] == f"hidden by report {got['w-hid'].hidden_by}" and not hid["image_removed"]
        assert gone["hidden"] == f"hidden by report {got['w-gone'].hidden_by}; removed, image deleted"
        assert gone["image_removed"] is True
        assert c.get("/img/avatar/maya/w-hid").status_code == 200  # an open report: still reviewable
        missing = c.get("/img/avatar/maya/w-gone")
        assert missing.status_code == 404 and "deleted" in missing.json()["error"]
        assert "mirror reports show" in missing.json()["fix"]
        h = {"X-Review-Token": page_server.app.state.token}
        refused = c.post("/api/decide", json={"kind": "avatar", "key": "maya/w-gone", "state": "approved"}, headers=h)
        assert refused.status_code == 404 and _review(review_core, "maya/w-gone", "avatar") is None
        # the earlier avatar beside m-flag is m-ok, not the hidden m-rep made after it
        previous = c.get("/img/avatar/maya/m-flag", params={"which": "previous"}).content
        assert previous == review_core.store.read_image(got["m-ok"].image_path)
        assert previous != review_core.store.read_image(got["m-rep"].image_path)
    res = CliRunner().invoke(
        app, ["review", "list", "--flagged", "--data-dir", str(review_core.settings.data_dir)], env={"COLUMNS": "300"}
    )
    assert res.exit_code == 0 and "image deleted" in res.stdout and got["w-hid"].hidden_by in res.stdout


@needs_browser
def test_the_flagged_queue_page_shows_hidden_and_removed_avatars_without_broken_images(
    page_server, review_core, browser_page
):
    got = _hide_some(review_core)
    page = browser_page
    page.goto(page_server.url + "/")
    page.locator(".tabs button[data-queue='flagged']").click()
    page.wait_for_function("() => document.querySelectorAll('.card').length === 3")
    page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
    hidden_img = ".card[data-key='maya/w-hid'] img"
    assert page.evaluate(f'() => document.querySelector("{hidden_img}").naturalWidth') > 0
    gone = page.locator(".card[data-key='maya/w-gone']")  # loads no image at all: it was deleted
    assert gone.locator("img").count() == 0 and "image deleted" in gone.inner_text()
    assert f"hidden by report {got['w-hid'].hidden_by}" in page.locator(".card[data-key='maya/w-hid']").inner_text()
    gone.click()
    page.wait_for_function("() => document.querySelector('#detail h2') !== null")
    detail = page.locator("#detail").inner_text()
    assert "Image deleted" in detail and "never shown to the user" in detail
    assert page.evaluate("() => [...document.querySelectorAll('#detail img')].every(i => i.naturalWidth)")


def test_docs_screenshot_exists_after_the_browser_test():
    shot = Path(ROOT / "docs" / "review-page.png")
    assert shot.is_file() and shot.stat().st_size > 50_000

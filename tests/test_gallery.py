"""Gallery output: paged contact sheets, an HTML page of thumbnails, and the page opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mirror_cli.cli.app import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def gallery(make_core, tmp_path):
    core = make_core()
    for stage in ("newReflection", "firstWeek", "month"):
        core.generate(["kenji"], stage)
    core.trilogy("kenji")
    core.generate(["sofia"], "newReflection")
    return core, core.gallery(["kenji"], tmp_path / "out")


def test_contact_sheet_has_every_tile(gallery):
    _, paths = gallery
    sheet = Image.open(paths["contact_sheet"])
    assert sheet.width > 1000 and sheet.height > 1200  # 3 columns x 3 rows of 320 px tiles
    # the missing stages are drawn as placeholders, not left out
    px = sheet.convert("RGB").getpixel((24 + 160, 72 + 2 * (320 + 58 + 24) + 160))
    assert px != (253, 244, 230)


def test_empty_tiles_say_why(make_core, tmp_path):
    """A stage passed over (evolve makes only the stage reached) is 'skipped', not 'not reached'."""
    core = make_core()
    core.generate(["kenji"], "newReflection")
    core.generate(["kenji"], "month")
    active = core.persona("kenji").progress.active_days
    page = Path(core.gallery(["kenji"], tmp_path / "g")["html"]).read_text(encoding="utf-8")
    empty = dict(re.findall(r"<div class='card empty'>.*?'label'>([^<]+)</div><div class='sub'>([^<]+)<", page))
    assert empty["First Week"] == empty["Two Weeks"] == "skipped: went straight to One Month"
    half = core.configs.stages.get("halfYear").from_day
    assert active < half and empty["Half Year"] == f"not reached yet (from day {half})"
    assert empty["Original"] == "not made yet (mirror trilogy)"
    assert "not reached" not in empty["First Week"]


def test_html_shows_thumbnails_linking_to_full_images(gallery):
    core, paths = gallery
    page_path = Path(paths["html"])
    page = page_path.read_text(encoding="utf-8")
    srcs = re.findall(r"src='([^']+)'", page)
    hrefs = re.findall(r"href='([^']+)'", page)
    assert len(srcs) == 6 and len(hrefs) == 6
    for src, href in zip(srcs, hrefs, strict=True):
        thumb, full = Image.open(page_path.parent / src), Image.open(page_path.parent / href)
        assert max(thumb.size) <= 256 and full.size == (1024, 1024)
    assert "data:" not in page and "http://" not in page and "https://" not in page
    assert len(page) < 20_000  # the page itself carries no pixels
    for rec in core.timeline("kenji"):
        assert rec.message.split(".")[0].replace("'", "&#x27;") in page
    assert "$0.00" in page and "$0.0000" not in page and "Kenji Watanabe" in page


def test_hidden_and_removed_avatars_are_left_out_of_the_gallery(make_core, tmp_path):
    """An avatar hidden by a report is not in the gallery (the tile says why it is empty), and one
    whose report removed it (its image deleted from the store) does not break the sheet or page."""
    from mirror_cli.reporting import file_report, resolve_report

    core = make_core()
    for stage in ("newReflection", "firstWeek", "month"):
        core.generate(["kenji"], stage)
    records = {r.target: r for r in core.store.list_avatars("kenji")}
    now = records["month"].created_at
    reported = file_report(core.store, records["firstWeek"], "scary", now=now).report
    removed = file_report(core.store, records["month"], "offensive", now=now).report
    resolve_report(core.store, removed.id, "remove", by="operator:t", note="not ok", now=now)
    paths = core.gallery(["kenji"], tmp_path / "g")
    page = Path(paths["html"]).read_text(encoding="utf-8")
    srcs = re.findall(r"src='([^']+)'", page)
    assert len(srcs) == 1  # newReflection only
    images = sorted(p.name for p in (tmp_path / "g").glob("*-images/*"))
    assert images and all("newReflection" in name for name in images), images
    empty = dict(re.findall(r"<div class='card empty'>.*?'label'>([^<]+)</div><div class='sub'>([^<]+)<", page))
    assert empty["First Week"] == f"hidden by report {reported.id}"
    assert empty["One Month"] == f"hidden by report {removed.id}"
    assert records["month"].message.split(".")[0] not in page.replace("&#x27;", "'")
    Image.open(paths["contact_sheet"]).verify()


def test_all_users_overview(make_core, tmp_path):
    core = make_core()
    core.generate(["demo", "maya"], "month")
    paths = core.gallery(None, tmp_path / "all", everyone=True)
    page = Path(paths["html"]).read_text(encoding="utf-8")
    assert "Alex Rivera" in page and "Maya Okafor" in page and "Kenji" not in page


def test_all_users_contact_sheets_are_paged(make_core, tmp_path, monkeypatch):
    from mirror_cli import gallery

    core = make_core()
    core.generate(["demo", "maya", "sofia"], "newReflection")
    one_user = 72 + 3 * (320 + 58 + 24) + 24
    monkeypatch.setattr(gallery, "MAX_SHEET_HEIGHT", 2 * one_user)
    paths = core.gallery(None, tmp_path / "all", everyone=True)
    sheets = [Image.open(p) for p in paths["contact_sheets"]]
    assert [s.height for s in sheets] == [2 * one_user, one_user]
    assert paths["contact_sheet"] == paths["contact_sheets"][0]


def test_cli_gallery_needs_users(data_dir, tmp_path):
    r = CliRunner().invoke(app, ["gallery", "--data-dir", str(data_dir), "--out", str(tmp_path / "g"), "--json"])
    assert r.exit_code == 2 and "--all" in r.stdout


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (make test installs it)"
)
def test_page_loads_all_images_in_headless_chromium(gallery, tmp_path):
    assert CHROMIUM, "make test installs Debian's chromium; CI must have it"
    _, paths = gallery
    url = "file://" + os.path.abspath(paths["html"])
    common = [
        CHROMIUM,
        *BROWSER_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert 'data-images-loaded="6"' in dom.stdout and 'data-images-total="6"' in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, "--window-size=1280,1400", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    img = Image.open(shot).convert("RGB")
    colours = img.resize((64, 64)).getcolors(64 * 64)
    assert colours is not None and len(colours) > 200  # a real page with pictures, not a blank screen

"""Photo intake: formats, EXIF orientation, metadata stripped before sending or storing, bombs."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mirror_cli.config import PhotoLimits
from mirror_cli.errors import PhotoError
from mirror_cli.imaging import intake_photo, intake_photo_bytes


def jpeg_with_exif(orientation: int = 6) -> bytes:
    """A 400x200 JPEG (red left half) with orientation and GPS tags."""
    img = Image.new("RGB", (400, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation  # rotate 90 CW to display
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)}  # GPS IFD
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def test_orientation_applied_and_metadata_stripped(tmp_path):
    raw = jpeg_with_exif()
    assert Image.open(io.BytesIO(raw)).getexif().get(0x0112) == 6
    path = tmp_path / "me.jpg"
    path.write_bytes(raw)
    photo = intake_photo(path, PhotoLimits())
    img = Image.open(io.BytesIO(photo.data))
    assert img.size == (200, 400)  # rotated upright
    top = img.getpixel((100, 20))
    assert top[0] > 200 and top[2] < 60  # the red half is now on top
    assert not img.getexif() and "exif" not in img.info and "icc_profile" not in img.info
    assert b"PhoneMaker" not in photo.data and b"GPS" not in photo.data
    assert photo.mime == "image/png"


def test_longest_side_is_bounded():
    img = Image.new("RGB", (4000, 1000), (200, 120, 60))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    photo = intake_photo_bytes(buf.getvalue(), PhotoLimits(max_side=1024))
    assert (photo.width, photo.height) == (1024, 256)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_refused(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, format=fmt)
    with pytest.raises(PhotoError) as err:
        intake_photo_bytes(buf.getvalue(), PhotoLimits())
    assert "PNG, JPEG or WebP" in err.value.message


def test_not_an_image_and_truncated():
    with pytest.raises(PhotoError):
        intake_photo_bytes(b"%PDF-1.4 not a photo", PhotoLimits())
    good = jpeg_with_exif()
    with pytest.raises(PhotoError):
        intake_photo_bytes(good[: len(good) // 3], PhotoLimits())


def test_decompression_bomb_refused():
    img = Image.new("1", (12000, 12000))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with pytest.raises(PhotoError) as err:
        intake_photo_bytes(buf.getvalue(), PhotoLimits(max_pixels=10_000_000))
    assert "too many pixels" in err.value.message


def test_oversized_file_refused(tmp_path):
    p = tmp_path / "big.jpg"
    p.write_bytes(b"\xff" * 2_000_001)
    with pytest.raises(PhotoError) as err:
        intake_photo(p, PhotoLimits(max_bytes=2_000_000))
    assert "limit" in err.value.message


def test_trilogy_photo_sent_clean_and_records_carry_no_exif(make_core, openai_env, fast_configs, tmp_path):
    path = tmp_path / "me.jpg"
    path.write_bytes(jpeg_with_exif())
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    core.record_consent("amira", "photo", granted=True, terms_version="v1", recorded_by="app")
    report = core.trilogy("amira", path)
    assert report.count("generated") == 3
    for req in openai_env.requests:
        assert req["path"] == "/v1/images/edits"
        (ref,) = [r for r in req["references"] if r["filename"].startswith("reference-1")]
        sent = Image.open(io.BytesIO(ref["bytes"]))
        assert ref["content_type"] == "image/png" and sent.size == (200, 400)
        assert not sent.getexif() and b"PhoneMaker" not in ref["bytes"]
    for rec in core.store.list_avatars("amira"):
        stored = Image.open(io.BytesIO(core.store.read_image(rec.image_path)))
        assert not stored.getexif() and rec.references[0].role == "photo of the person"


def test_the_offline_renderer_says_the_photo_is_not_used(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from mirror_cli.cli.app import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "me.jpg").write_bytes(jpeg_with_exif())
    runner = CliRunner()
    assert runner.invoke(app, ["users", "import", "--examples"]).exit_code == 0
    assert runner.invoke(app, ["users", "consent", "--user", "demo", "--photo"]).exit_code == 0
    human = runner.invoke(app, ["trilogy", "--user", "demo", "--photo", "me.jpg"], env={"COLUMNS": "200"})
    assert human.exit_code == 0, human.output
    assert "note: the local renderer draws from the persona's description: the photo was checked but not used" in (
        human.stderr
    )
    as_json = runner.invoke(app, ["trilogy", "--user", "demo", "--photo", "me.jpg", "--json"])
    assert "not used" in json.loads(as_json.stdout)["summary"]["notes"][0]
    without = runner.invoke(app, ["trilogy", "--user", "demo", "--json"])
    assert "notes" not in json.loads(without.stdout)["summary"]

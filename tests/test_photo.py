"""Photo intake: formats, EXIF orientation, metadata stripped before sending or storing, bombs."""

from __future__ import annotations

import io

import pytest
from conftest import make_config_dir
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


def _photo_user(make_core, openai_env, fast_configs, tmp_path):
    """A core on the loopback OpenAI server, amira consenting to her photo, and the photo's file."""
    make_config_dir(tmp_path, {"per_user_daily": 9})  # a trilogy, its retry and one more
    path = tmp_path / "me.jpg"
    path.write_bytes(jpeg_with_exif())
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    core.record_consent("amira", "photo", granted=True, terms_version="v1", recorded_by="app")
    return core, path


def _drawn_from(request) -> str | None:
    """The sha256 of the image a recorded request is drawn from (None for a generation)."""
    firsts = [r["sha256"] for r in request["references"] if r["filename"].startswith("reference-1")]
    return firsts[0] if firsts else None


def _mark_retry_due(core, path, kind):
    """What a process killed after the gate rejected the first image of ``kind`` leaves: the
    retry marker under the photo job's key. Returns the photo as the intake makes it."""
    pic = intake_photo(path, core.configs.limits.photo)
    who = core.persona("amira")
    job = core.planner().plan(who, who.progress, kind, photo=pic)
    meta = {"user_id": "amira", "target": kind, "request_key": job.request_key, "attempt": "first", "photo": True}
    core.spool.mark_retry("amira", job.request_key, meta)
    return pic


def test_the_gate_retry_of_a_photo_job_is_an_edit_of_the_photo(make_core, openai_env, fast_configs, tmp_path):
    core, path = _photo_user(make_core, openai_env, fast_configs, tmp_path)
    openai_env.bad_next.append("blank")  # the first answer fails a hard check: one reinforced retry
    report = core.trilogy("amira", path)
    assert report.count("generated") == 3, [o.reason for o in report.outcomes]
    reinforce = core.configs.style.reinforce_prompt.strip()
    retries = [r for r in openai_env.requests if reinforce in r["params"]["prompt"]]
    assert len(openai_env.requests) == 4 and len(retries) == 1
    photo = _drawn_from(openai_env.requests[0])
    assert photo is not None and retries[0]["path"] == "/v1/images/edits" and _drawn_from(retries[0]) == photo
    for rec in core.store.list_avatars("amira"):
        assert rec.references[0].role == "photo of the person" and rec.references[0].sha256 == photo
    # the retry is paid under the first request's key: its rejected line and its own, one key
    paid = [e for e in core.store.events() if e.kind == "generated"]
    retried_key = next(e.request_key for e in paid if e.validation_ok is False)
    assert [e.validation_ok for e in paid if e.request_key == retried_key] == [False, True]
    kept = [p.name for p in (core.settings.data_dir / "avatars" / "amira").iterdir() if p.name.startswith("rejected")]
    assert len(kept) == 1 and kept[0].startswith("rejected-photo-")  # a withdrawal finds it


def test_a_resumed_gate_retry_sends_the_photo_again(make_core, openai_env, fast_configs, tmp_path):
    core, path = _photo_user(make_core, openai_env, fast_configs, tmp_path)
    kind = next(iter(core.configs.stages.trilogy))
    _mark_retry_due(core, path, kind)
    report = core.trilogy("amira", path)
    assert report.count("generated") == 3, [o.reason for o in report.outcomes]
    reinforce = core.configs.style.reinforce_prompt.strip()
    (retry,) = [r for r in openai_env.requests if reinforce in r["params"]["prompt"]]
    assert len(openai_env.requests) == 3  # the first request of the retried job is not sent again
    assert retry["path"] == "/v1/images/edits" and _drawn_from(retry) == _drawn_from(openai_env.requests[0])
    assert core.spool.pending() == []


def test_a_resumed_gate_retry_never_sends_a_withdrawn_photo(make_core, openai_env, fast_configs, tmp_path):
    """The run read amira's profile before she withdrew photo consent; its retry marker outlived
    the withdrawal. The retry is skipped with the reason: nothing is sent, nothing bought."""
    from mirror_cli.jobs.types import JobSpec
    from mirror_cli.usecases.runs import execute

    core, path = _photo_user(make_core, openai_env, fast_configs, tmp_path)
    read_before = core.persona("amira")
    core.record_consent("amira", "photo", granted=False, terms_version="v1", recorded_by="app")
    kind = next(iter(core.configs.stages.trilogy))
    pic = _mark_retry_due(core, path, kind)
    report = core.run_async(execute(core, [JobSpec(read_before, read_before.progress, kind, pic)], dry_run=False))
    (out,) = report.outcomes
    assert out.status in ("degraded", "fallback") and "withdrew consent" in (out.reason or ""), out.reason
    assert openai_env.requests == [] and report.cost_usd == 0.0


def test_a_leftover_photo_image_is_never_retried_from_the_anchor(make_core, openai_env, fast_configs, tmp_path):
    """A killed photo job left its paid first answer in the spool; a later run without the photo
    ingests it and the gate rejects it: the retry is skipped (the photo is gone), never bought
    from the anchor under the photo's key; the first image is kept as the gate decides."""
    from gate_samples import blank_amber

    from mirror_cli.models import ImageResult, TokenUsage

    core, path = _photo_user(make_core, openai_env, fast_configs, tmp_path)
    assert core.generate(["amira"], "month").count("generated") == 1  # an anchor to fall back on
    kind = next(iter(core.configs.stages.trilogy))
    pic = intake_photo(path, core.configs.limits.photo)
    job = core.planner().plan(core.persona("amira"), core.persona("amira").progress, kind, photo=pic)
    blank = io.BytesIO()
    blank_amber().save(blank, "PNG")
    answer = ImageResult(data=blank.getvalue(), mime="image/png", provider="openai", model="gpt-image-2")
    answer.usage = TokenUsage(output_image_tokens=10)
    meta = {"user_id": "amira", "target": kind, "request_key": job.request_key, "attempt": "first", "photo": True}
    core.spool.put("amira", job.request_key, answer, meta)
    sent = len(openai_env.requests)
    (out,) = core.run_async(core.asweep_spool())
    assert len(openai_env.requests) == sent  # no retry bought, from the anchor or anything else
    assert out.record is not None and out.record.status == "flagged"
    assert "photo the first image was drawn from is not available" in (out.reason or ""), out.reason
    kept = [p.name for p in (core.settings.data_dir / "avatars" / "amira").iterdir() if p.name.startswith("rejected")]
    assert len(kept) == 1 and kept[0].startswith("rejected-photo-")

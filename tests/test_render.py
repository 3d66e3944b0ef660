"""The offline renderer's promises, read back from the SVG it draws: a large face, open eyes
whose joy rises with the stages, a pose per stage, quarter and half year told apart; and its
speed machinery: layers cached in memory and on disk, one style per process, a process pool."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from mirror_cli import render
from mirror_cli.render import avatar, compose, pool, scene

STAGES = ("newReflection", "firstWeek", "twoWeeks", "month", "quarter", "halfYear")


@pytest.fixture
def specs(make_core):
    core = make_core()
    planner = core.planner()

    def plan(uid: str, target: str):
        p = core.persona(uid)
        spec = planner.plan(p, p.progress, target).request.spec
        assert spec is not None
        return spec

    return plan


@pytest.mark.parametrize("uid", ["demo", "amira", "kenji"])
def test_face_is_large_and_eyes_open_with_rising_joy(specs, uid):
    ranks = []
    for stage in STAGES:
        svg, _, _ = render.figure_svg(specs(uid, stage), 1024)
        g = render.face_geometry(svg)
        assert g["head_height_share"] >= 0.45, (stage, g)  # skin head alone, hair not counted
        assert g["head_and_shoulders_share"] >= 0.6, (stage, g)
        assert g["head_area_share"] >= 0.18, (stage, g)
        shape = avatar.EYES.get(str(g["eyes"]))
        assert shape is not None, f"{stage}: eyes {g['eyes']!r} are not one of the open shapes"
        assert shape.upper + shape.lower < 0.5, f"{stage}: the lids cover half the eye"
        ranks.append(shape.rank)
    assert ranks == sorted(ranks) and len(set(ranks)) == len(STAGES), ranks


def test_head_box_matches_the_avatar_drawing():
    # face_geometry measures with HEAD_BOX: it must be the head DiceBear draws.
    head = avatar.definition()["canvas"]["elements"][1]["attributes"]["d"]
    assert head.startswith("M140 36a56 56 0 0 0-56 56") and "74 110" in head and "206 124" in head


def test_pose_changes_with_the_stage():
    poses = {s: scene.stage_look(s).pose for s in STAGES}
    assert poses["firstWeek"].scale > poses["twoWeeks"].scale  # leaning in: closer to the camera
    assert poses["halfYear"].y < poses["twoWeeks"].y and poses["halfYear"].tilt == 0  # upright, chin up
    assert poses["newReflection"].tilt != 0  # a tentative tilt of the head
    assert len(set(poses.values())) >= 5


def test_quarter_and_half_year_are_distinct(specs):
    q, h = specs("demo", "quarter"), specs("demo", "halfYear")
    q_svg, h_svg = render.figure_svg(q, 1024)[0], render.figure_svg(h, 1024)[0]
    assert "outfit-headphones" in q_svg and "outfit-headphones" not in h_svg
    assert "outfit-scarf" in h_svg and "outfit-star-pin" in h_svg and "outfit-scarf" not in q_svg
    assert scene.stage_look("quarter").light != scene.stage_look("halfYear").light
    assert set(h.props) - set(q.props) >= {"wall_shelf", "hanging_plant"}


def test_layers_are_drawn_once_then_read_from_memory_and_disk(specs, tmp_path):
    spec = specs("demo", "month")
    palette = {"background_top": "#F6A04D", "background_bottom": "#FBD38D", "glow": "#FFE3A3"}
    palette |= {"desk": "#9C5B2E", "accent": "#E8863A"}
    folder = tmp_path / "cache"
    compose.LayerCache.forget()
    first = compose.LayerCache(folder, "test-versions")
    a = compose.frame(spec, palette, 512, first)
    assert first.renders == 3  # background, desk, light
    compose.frame(specs("kenji", "month"), palette, 512, first)
    assert first.renders <= 5  # another person at the same stage: only props can differ
    renders = first.renders
    compose.frame(spec, palette, 512, first)
    assert first.renders == renders  # memory
    assert len(list(folder.glob("*.png"))) == renders
    compose.LayerCache.forget()
    second = compose.LayerCache(folder, "test-versions")
    b = compose.frame(spec, palette, 512, second)
    assert second.renders == 0 and second.loads == 3  # disk, a new process would do the same
    assert a.tobytes() == b.tobytes()


def test_local_renders_cache_under_the_data_dir_not_the_package(make_core, data_dir):
    core = make_core()
    core.generate(["demo"], "month")
    assert list((data_dir / "cache" / "render").glob("*.png"))
    package = Path(render.__file__).parent.parent
    assert not list(package.rglob("*.png"))


def test_style_is_built_once_under_threads(monkeypatch):
    monkeypatch.setattr(avatar, "_style_obj", None)
    seen: list[int] = []
    barrier = threading.Barrier(6)

    def ask() -> None:
        barrier.wait()
        seen.append(id(avatar.style()))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 6 and len(set(seen)) == 1


def test_frame_is_deterministic_and_warm(specs):
    spec = specs("sofia", "halfYear")
    palette = {"background_top": "#F6A04D", "background_bottom": "#FBD38D", "glow": "#FFE3A3"}
    palette |= {"desk": "#9C5B2E", "accent": "#E8863A"}
    one, two = render.render_png(spec, palette, 512), render.render_png(spec, palette, 512)
    assert one == two
    img = Image.open(io.BytesIO(one)).convert("RGB")
    r, _g, b = img.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[misc]
    assert r > b + 40  # warm light


def test_default_concurrency_follows_the_provider(make_core, openai_env):
    assert make_core().pipeline().concurrency == pool.cores()
    assert make_core(concurrency=3).pipeline().concurrency == 3
    api = make_core(provider="openai", model="gpt-image-2", base_url=openai_env.url)
    rate = api.configs.limits.rate_limits["gpt-image-2"]
    assert api.pipeline().concurrency == max(1, min(api.configs.limits.concurrency, int(rate.images_per_minute)))


def test_pool_is_sized_to_the_cores_and_renders_in_workers(make_core):
    import os

    core = make_core()
    report = core.generate(["demo"], "newReflection")
    assert report.count("generated") == 1
    ex = pool.pool()
    assert ex._max_workers == pool.cores()  # type: ignore[attr-defined]
    assert all(pid != os.getpid() for pid in ex._processes)  # type: ignore[attr-defined]

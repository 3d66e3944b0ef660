"""Same-face score: with the [identity] extra, every new stage is compared with the user's anchor,
the distance is stored on the avatar and the ledger, shown by usage and the gallery, and drift is
flagged, never re-bought; without it, the score is skipped and doctor says so."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mirror_cli import identity

ROOT = Path(__file__).resolve().parent.parent
HAVE_EXTRA, WHY = identity.available()
needs_extra = pytest.mark.skipif(not HAVE_EXTRA, reason=f"identity extra not installed ({WHY}); make dev installs it")


def _style_with(tmp_path: Path, threshold: float) -> Path:
    import shutil

    cfg = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", cfg)
    path = cfg / "styles" / "daymi.yaml"
    data = yaml.safe_load(path.read_text())
    data["identity"]["threshold"] = threshold
    path.write_text(yaml.safe_dump(data))
    return cfg


@needs_extra
def test_same_persona_stays_under_the_threshold(make_core):
    core = make_core()
    for stage in ("newReflection", "month", "halfYear"):
        core.generate(["demo"], stage)
    anchor, *later = core.timeline("demo")
    assert anchor.identity == {}  # the anchor is not compared with itself
    threshold = core.configs.style.identity.threshold
    for rec in later:
        assert rec.identity["anchor_id"] == anchor.id
        assert rec.identity["distance"] is not None and rec.identity["distance"] < threshold, rec.identity
        assert rec.status == "ok" and not rec.identity["drift"]


def _lorelei(seed: str):
    """A different cartoon character: DiceBear's Lorelei style (CC0), shipped with dicebear-styles."""
    import io
    import json
    from importlib import resources

    import resvg_py
    from dicebear import Avatar, Style
    from PIL import Image

    style = Style(json.loads((resources.files("dicebear_styles") / "lorelei.json").read_text(encoding="utf-8")))
    svg = str(Avatar(style, {"seed": seed, "backgroundColor": ["f6a04d"]}))
    return Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=svg, width=512, height=512))))


@needs_extra
def test_a_different_character_scores_over_the_threshold(make_core):
    """Another character's face is past the threshold. (Two offline personas at the same stage
    are not: avataaars share one face template; bench/identity_separation.py shows the table.)"""
    core = make_core()
    core.generate(["kenji"], "newReflection")
    kenji = core.timeline("kenji")[0]
    anchor = core.store.read_image(kenji.image_path)
    threshold = core.configs.style.identity.threshold
    for seed in ("a", "b"):
        score = identity.score(anchor, kenji.id, _lorelei(seed), threshold)
        assert score.distance is not None and score.drift, score


@needs_extra
def test_drift_is_flagged_shown_and_never_rebought(make_core, tmp_path):
    core = make_core(config_dir=_style_with(tmp_path, 0.01))
    core.generate(["demo"], "newReflection")
    report = core.generate(["demo"], "month")
    assert report.count("generated") == 1
    rec = core.timeline("demo")[-1]
    assert rec.status == "flagged" and rec.identity["drift"] and "identity drift" in (rec.reason or "")
    again = core.generate(["demo"], "month")  # the same job: a cache hit, not a new purchase
    assert again.count("cached") == 1 and again.count("generated") == 0
    usage = core.usage()
    assert usage.identity_scored == 1 and usage.identity_drift == 1 and usage.identity_worst == rec.identity["distance"]
    paths = core.gallery(["demo"], tmp_path / "g")
    assert f"face {rec.identity['distance']:.2f} drift" in Path(paths["html"]).read_text(encoding="utf-8")


def test_without_the_extra_the_score_is_skipped_and_doctor_says_so(tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["dlib"] = None  # as if the [identity] extra were not installed
        from mirror_cli.core import Mirror
        from mirror_cli.settings import load_settings
        flags = {{"data_dir": {str(tmp_path / "data")!r}, "config_dir": {str(ROOT / "configs")!r}}}
        core = Mirror(load_settings(flags))
        core.import_users([core.configs.personas["demo"]])
        core.generate(["demo"], "newReflection")
        core.generate(["demo"], "month")
        check = next(c for c in core.doctor() if c["check"] == "identity")
        print(json.dumps({{"identity": [r.identity for r in core.timeline("demo")], "check": check}}))
        core.close()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["identity"] == [{}, {}]
    check = result["check"]
    assert check["status"] == "warn" and "skipped" in check["detail"] and "dlib" in check["detail"]
    assert "[identity]" in check["fix"]

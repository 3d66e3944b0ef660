import subprocess
import sys

import pytest

from mirror_cli.config import example_personas
from mirror_cli.models import Progress
from mirror_cli.planner import request_key

EXAMPLES = example_personas()


@pytest.fixture
def planner(make_core):
    core = make_core()
    return core.planner()


def _job(planner, core_persona, target="month", **kw):
    return planner.plan(core_persona, core_persona.progress, target, **kw)


def test_same_inputs_same_key(planner):
    p = EXAMPLES["demo"]
    assert _job(planner, p).request_key == _job(planner, p).request_key


def test_key_is_stable_across_processes(planner):
    p = EXAMPLES["demo"]
    key = _job(planner, p).request_key
    code = (
        "from mirror_cli.core import Mirror; from mirror_cli.settings import load_settings;"
        "import tempfile; m=Mirror(load_settings({'data_dir': tempfile.mkdtemp()}));"
        "pl=m.planner(); from mirror_cli.config import example_personas as ex;"
        "p=ex()['demo']; print(pl.plan(p, p.progress, 'month').request_key)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={
            "PYTHONHASHSEED": "123",
            "MIRROR_CONFIG_DIR": str(planner.configs.root),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert out.stdout.strip() == key


def test_every_input_changes_the_key(planner):
    p = EXAMPLES["demo"]
    base = _job(planner, p)
    variants = {
        "stage": _job(planner, p, "quarter"),
        "user": _job(planner, EXAMPLES["maya"]),
        "progress": planner.plan(p, Progress(active_days=31, goals_completed=11), "month"),
        "appearance": planner.plan(
            p.model_copy(update={"appearance": p.appearance.model_copy(update={"glasses": "none"})}),
            p.progress,
            "month",
        ),
    }
    keys = {name: j.request_key for name, j in variants.items()}
    assert base.request_key not in keys.values()
    assert len(set(keys.values())) == len(keys)


def test_renderer_and_style_versions_are_in_the_key(planner):
    p = EXAMPLES["demo"]
    job = _job(planner, p)
    entry = planner.entry
    style = f"{planner.configs.style.name}@{planner.configs.style.version}"
    same = request_key(p.id, "local", entry, planner.provider.renderer_version, style, job.request)
    assert same == job.request_key
    assert request_key(p.id, "local", entry, "dicebear-core=11.0.0", style, job.request) != job.request_key
    assert (
        request_key(p.id, "local", entry, planner.provider.renderer_version, "daymi@2", job.request) != job.request_key
    )
    bigger = job.request.model_copy(update={"quality": "high"})
    assert request_key(p.id, "local", entry, planner.provider.renderer_version, style, bigger) != job.request_key

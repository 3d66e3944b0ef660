import pytest
from conftest import CONFIGS

from mirror_cli.config import ConfigSet, example_personas, load_yaml_model
from mirror_cli.errors import ConfigError
from mirror_cli.models import Persona
from mirror_cli.resources import examples_dir as example_personas_dir
from mirror_cli.settings import load_settings


def test_shipped_configs_are_valid():
    cfg = ConfigSet(CONFIGS)
    cfg.validate_all()
    examples = example_personas()
    assert len(examples) >= 5
    voices = {p.companion.voice for p in examples.values()}
    assert voices == {"warm", "playful", "wise"}


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("id: x\nname: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_yaml_model(bad, Persona)
    assert str(bad) in err.value.message and "line" in err.value.message


def test_schema_violation_names_field_line_and_allowed_values(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("id: x\nname: X\nappearance:\n  skin: green\n  hat: yes\n")
    with pytest.raises(ConfigError) as err:
        load_yaml_model(bad, Persona)
    msg = err.value.message
    assert "appearance.skin (line 4)" in msg and "'pale'" in msg and "'dark'" in msg
    assert "appearance.hat (line 5): unknown field" in msg


def test_bad_persona_file_fails_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from mirror_cli.cli.app import app

    folder = tmp_path / "people"
    folder.mkdir()
    (folder / "ok.yaml").write_text((next(example_personas_dir().glob("demo.yaml"))).read_text())
    (folder / "zz.yaml").write_text("id: bad id!\nname: Z\n")
    files = [str(folder / "ok.yaml"), str(folder / "zz.yaml")]
    result = CliRunner().invoke(app, ["users", "import", *files, "--data-dir", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 2, result.output  # an unsafe id in a user's own file is a usage error
    assert "zz.yaml" in result.stdout and "id" in result.stdout
    assert not (tmp_path / "data").exists()


def test_settings_precedence(tmp_path, monkeypatch):
    f = tmp_path / "mirror.yaml"
    f.write_text("quality: low\nstore: local\nconcurrency: 2\nmodel: gpt-image-2\n")
    monkeypatch.setenv("MIRROR_SETTINGS", str(f))
    s = load_settings()
    assert (s.quality, s.concurrency, s.model) == ("low", 2, "gpt-image-2")
    monkeypatch.setenv("MIRROR_QUALITY", "high")
    monkeypatch.setenv("MIRROR_CONCURRENCY", "3")
    s = load_settings()
    assert (s.quality, s.concurrency) == ("high", 3)
    s = load_settings({"quality": "medium"})
    assert (s.quality, s.concurrency, s.model) == ("medium", 3, "gpt-image-2")


def test_unknown_setting_is_named(tmp_path, monkeypatch):
    f = tmp_path / "mirror.yaml"
    f.write_text("qualty: low\n")
    monkeypatch.setenv("MIRROR_SETTINGS", str(f))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "qualty" in err.value.message and str(f) in err.value.message


def test_missing_config_dir(tmp_path, make_core):
    with pytest.raises(ConfigError) as err:
        make_core(config_dir=tmp_path / "nope")
    assert "MIRROR_CONFIG_DIR" in err.value.hint

"""Configs that cannot overspend: every numeric field of every shipped config file, set to a
negative number, zero, NaN, infinity or a string, is either refused with an error naming the file
and the field, or leaves every paid model with a positive, finite estimate; every price is > 0
and finite, a missing price for the requested size and quality is refused before any request,
and a budget or cap of 0 allows nothing."""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CONFIGS, make_config_dir
from pydantic import ValidationError

from mirror_cli.config import (
    ConfigSet,
    FallbacksConfig,
    LimitsConfig,
    MessagesConfig,
    ModelsConfig,
    StagesConfig,
    StyleConfig,
    load_yaml_model,
)
from mirror_cli.errors import ConfigError, MirrorError
from mirror_cli.jobs.money import Refused
from mirror_cli.pricing import estimate
from mirror_cli.stores.base import Caps, Reservation

MODELS: dict[str, type[Any]] = {
    "limits.yaml": LimitsConfig,
    "models.yaml": ModelsConfig,
    "stages.yaml": StagesConfig,
    "fallbacks.yaml": FallbacksConfig,
    "messages.yaml": MessagesConfig,
    "styles/daymi.yaml": StyleConfig,
}
FILES = list(MODELS)
BAD: list[Any] = [-1, -0.5, 0, math.nan, math.inf, -math.inf, "12"]
# fields where a negative number means something (a bluish cast the gate still accepts)
NEGATIVE_OK = {("styles/daymi.yaml", ("gate", "min_warmth"))}


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path, node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _fields() -> list[tuple[str, tuple[Any, ...]]]:
    out = []
    for name in FILES:
        data = yaml.safe_load((CONFIGS / name).read_text())
        out.extend((name, path) for path, _ in _leaves(data))
    return out


def _paid_estimates(models: ModelsConfig) -> list[float]:
    """Every paid model's estimate at every quality and listed size it offers."""
    out = []
    for entry in models.models.values():
        if entry.provider == "local":
            continue
        sizes = ["1024x1024", "1024x1536"] if entry.sizes == "flexible" else entry.sizes
        for quality in entry.qualities:
            for size in sizes:
                try:
                    out.append(estimate(entry, quality, size, 2))
                except ConfigError:
                    continue  # refused before any request: that cannot overspend
    return out


def _load(root: Path) -> ConfigSet:
    cfg = ConfigSet(root)
    cfg.validate_all()
    _ = cfg.fallbacks
    return cfg


def test_the_shipped_configs_have_positive_finite_prices():
    cfg = _load(CONFIGS)
    estimates = _paid_estimates(cfg.models)
    assert estimates and all(e > 0 and math.isfinite(e) for e in estimates)
    assert len(_fields()) > 100  # the walk below really walks the files


def test_every_numeric_field_refuses_what_could_overspend():
    originals = {name: yaml.safe_load((CONFIGS / name).read_text()) for name in FILES}
    loose: list[str] = []
    for name, path in _fields():
        for bad in BAD:
            data = copy.deepcopy(originals[name])
            _set(data, path, bad)
            where = f"{name}:{'.'.join(map(str, path))}={bad!r}"
            try:
                loaded = MODELS[name].model_validate(data)
            except ValidationError as exc:
                named = {p for e in exc.errors() for p in e["loc"]} | {exc.errors()[0]["msg"]}
                assert path[-1] in named or path[-2] in named or any(str(path[-1]) in str(n) for n in named), (
                    where,
                    exc.errors(),
                )
                continue
            # accepted: it must be a number a person could mean, and nobody can overspend with it
            if isinstance(bad, str) or not math.isfinite(bad) or (bad < 0 and (name, path[-2:]) not in NEGATIVE_OK):
                loose.append(where)
            estimates = _paid_estimates(loaded) if isinstance(loaded, ModelsConfig) else [1.0]
            if not all(e > 0 and math.isfinite(e) for e in estimates):
                loose.append(f"{where} (estimate {min(estimates)})")
    assert not loose, "accepted although it could overspend or is not a number:\n" + "\n".join(loose)


@pytest.mark.parametrize(
    ("name", "path", "bad"),
    [
        ("models.yaml", ("models", "gpt-image-2", "per_image", "medium", "1024x1024"), -5.0),
        ("models.yaml", ("models", "gpt-image-2", "prices", "image_out"), 0),
        ("limits.yaml", ("monthly_budget_usd",), math.nan),
        ("limits.yaml", ("per_user_daily",), "3"),
    ],
)
def test_the_error_names_the_file_and_the_field(tmp_path, name, path, bad):
    data = yaml.safe_load((CONFIGS / name).read_text())
    _set(data, path, bad)
    (tmp_path / name).write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_yaml_model(tmp_path / name, MODELS[name])
    assert name in err.value.message and str(path[-1]) in err.value.message


def _models_with(tmp_path: Path, change: Any) -> Path:
    cfg = make_config_dir(tmp_path)
    data = yaml.safe_load((cfg / "models.yaml").read_text())
    change(data["models"]["gpt-image-2"])
    (cfg / "models.yaml").write_text(yaml.safe_dump(data))
    return cfg


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["per_image"].pop("high"),
        lambda m: m.update(sizes=["1024x1024"], per_image={"high": {"1024x1536": 0.2}}),
    ],
    ids=["no price for the quality", "no price for the size"],
)
def test_a_missing_price_is_refused_before_any_request(make_core, openai_env, tmp_path, change):
    cfg = _models_with(tmp_path, change)
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=cfg, quality="high", size="1024x1024")
    with pytest.raises(ConfigError) as err:
        core.generate(["demo"], "month")
    assert "price" in err.value.message and "models.yaml" in (err.value.hint or "")
    assert openai_env.requests == []


def test_a_budget_or_cap_of_zero_allows_nothing(make_core, openai_env, tmp_path):
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=make_config_dir(tmp_path))
    persona = core.persona("demo")
    job = core.planner().plan(persona, persona.progress, "month")
    kinds = []
    for caps, max_cost in (
        (Caps(0, None, None), None),
        (Caps(None, 0, None), None),
        (Caps(None, None, 0.0), None),
        (Caps(None, None, None), 0.0),
    ):
        money = core.pipeline(max_cost=max_cost).money
        money.caps = caps
        got = asyncio.run(money.reserve(job))
        assert isinstance(got, Refused), (caps, max_cost)
        kinds.append(got.limit)
    assert kinds == ["per_user_daily", "system_daily", "monthly_budget", "run_budget"]
    money = core.pipeline().money
    money.caps = Caps(1, 1, 1.0)
    assert isinstance(asyncio.run(money.reserve(job)), Reservation)


def test_a_negative_price_never_reaches_a_request(make_core, openai_env, tmp_path):
    """The attack that billed 8.7x the monthly budget: per_image -5.0."""
    cfg = _models_with(tmp_path, lambda m: m["per_image"]["medium"].update({"1024x1024": -5.0}))
    with pytest.raises(MirrorError) as err:
        make_core(provider="openai", base_url=openai_env.url, config_dir=cfg).generate(["demo"], "month")
    assert "models.yaml" in err.value.message and "per_image" in err.value.message
    assert openai_env.requests == []

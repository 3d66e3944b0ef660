"""Cost arithmetic checked against the per-image prices in the reference (output tokens only)."""

import pytest
from conftest import CONFIGS

from mirror_cli.config import ConfigSet
from mirror_cli.models import TokenUsage
from mirror_cli.pricing import cost_from_usage, estimate, output_tokens_estimate


@pytest.fixture(scope="module")
def models():
    return ConfigSet(CONFIGS).models.models


@pytest.mark.parametrize(
    "model,tokens,price",
    [
        ("gpt-image-1", 272, 0.011),  # low 1024x1024: 272 tokens x $40/1M
        ("gpt-image-1", 1056, 0.042),  # medium
        ("gpt-image-1", 4160, 0.167),  # high
        ("gpt-image-1.5", 1056, 0.034),  # $32/1M
        ("gpt-image-1.5", 4160, 0.133),
        ("gpt-image-2", 7024, 0.211),  # ~7,024 tokens for 1024^2 high at $30/1M
    ],
)
def test_output_cost_matches_reference_per_image_price(models, model, tokens, price):
    cost = cost_from_usage(models[model], TokenUsage(output_image_tokens=tokens))
    # the published per-image prices are rounded to 3 decimals
    assert cost == pytest.approx(price, abs=0.0007)


def test_full_usage_arithmetic(models):
    u = TokenUsage(input_text_tokens=1000, input_image_tokens=2000, output_image_tokens=3000, output_text_tokens=400)
    expected = (1000 * 5 + 2000 * 8 + 3000 * 30 + 400 * 10) / 1e6
    assert cost_from_usage(models["gpt-image-2"], u) == pytest.approx(expected)
    assert cost_from_usage(models["gpt-image-2"], u, batch=True) == pytest.approx(expected / 2)


def test_estimate_covers_output_prompt_and_references(models):
    e = models["gpt-image-2"]
    base = estimate(e, "medium", "1024x1024", 0)
    assert base == pytest.approx(0.053 + 450 * 5 / 1e6)
    assert estimate(e, "medium", "1024x1024", 2) == pytest.approx(base + 2 * 4500 * 8 / 1e6)
    assert estimate(e, "medium", "1024x1024", 0, batch=True) == pytest.approx(base / 2)
    assert estimate(e, "low", "1536x1024", 0) < base
    assert output_tokens_estimate(e, "high", "1024x1024") == pytest.approx(7033, abs=2)
    assert estimate(models["local"], "high", "1024x1024", 3) == 0

"""Cost from token usage and the models table; estimates before spending."""

from __future__ import annotations

from .config import ModelEntry
from .errors import ConfigError
from .models import TokenUsage


def cost_from_usage(entry: ModelEntry, usage: TokenUsage, *, batch: bool = False) -> float:
    """Exact cost in USD of one response, from its ``usage`` (no cached-token field exists,
    so uncached input prices apply)."""
    p = entry.prices
    usd = (
        usage.input_text_tokens * p.text_in
        + usage.input_image_tokens * p.image_in
        + usage.output_image_tokens * p.image_out
        + usage.output_text_tokens * (p.text_out or 0.0)
    ) / 1_000_000
    if batch:
        usd *= entry.batch_discount
    return round(usd, 8)


def per_image_output(entry: ModelEntry, quality: str, size: str) -> float:
    """The list price of one image's output, or an estimate for sizes not in the table (a model
    with flexible sizes scales its square price; 'auto' takes the dearest). A paid model with no
    price for the quality or the size is refused: an image must never be estimated at 0."""
    priced = "high" if quality in ("auto", "xhigh", "max") else quality
    table = entry.per_image.get(priced) or {}
    if size in table:
        return table[size]
    if entry.prices.free:
        return 0.0
    if not table or (entry.sizes != "flexible" and size.lower() != "auto"):
        missing = f"quality {priced!r}" if not table else f"size {size!r} at quality {priced!r}"
        raise ConfigError(
            f"{entry.snapshot} has no price for {missing}; no request was sent.",
            f"Add per_image.{priced}.{size} to models.yaml, or choose a size and quality it lists.",
        )
    # Flexible sizes: scale the square price by pixel count.
    base = table.get("1024x1024", max(table.values()))
    try:
        w, h = (int(x) for x in size.lower().split("x"))
    except ValueError:
        return max(table.values())
    return base * (w * h) / (1024 * 1024)


def estimate(entry: ModelEntry, quality: str, size: str, n_references: int, *, batch: bool = False) -> float:
    """A pessimistic estimate used to reserve budget before a request is sent."""
    p = entry.prices
    usd = per_image_output(entry, quality, size)
    usd += entry.prompt_tokens_estimate * p.text_in / 1_000_000
    usd += n_references * entry.reference_image_tokens * p.image_in / 1_000_000
    if batch:
        usd *= entry.batch_discount
    return round(usd, 6)


def output_tokens_estimate(entry: ModelEntry, quality: str, size: str) -> int:
    if entry.prices.image_out <= 0:
        return 0
    return round(per_image_output(entry, quality, size) / entry.prices.image_out * 1_000_000)

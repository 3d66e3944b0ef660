"""How figures read in human output (tables, the gallery): money, counts, rates, sizes. JSON
keeps the raw numbers; these are for people."""

from __future__ import annotations

from typing import Any


def money(usd: float | None) -> str:
    """Dollars: cents from $1 up ($1,234.50), up to four decimals below ($0.0556, $0.12), $0.00."""
    if usd is None:
        return "–"
    if usd == 0 or abs(usd) >= 1:
        return f"${usd:,.2f}"
    if abs(usd) < 0.00005:
        return "<$0.0001"
    digits = f"{usd:.4f}".rstrip("0")
    if len(digits.split(".")[1]) < 2:
        digits = f"{usd:.2f}"
    return "$" + digits


def count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def size(n: int | None) -> str:
    """Bytes in decimal units, as the cloud free tiers state them: 512 B, 280.7 kB, 5.0 GB."""
    if n is None:
        return "–"
    if abs(n) < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in ("kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:,.1f} {unit}"


def figure(key: str, value: Any) -> str:
    """A usage figure by its name: *_usd and cost_* as money, *rate as a percentage, bytes as a size,
    counts with separators, distances with two decimals."""
    if value is None:
        return "–"
    if key.endswith("_usd") or key.startswith("cost_"):
        return money(float(value))
    if key.endswith(("rate", "_ratio")):
        return ratio(float(value))
    if key.startswith("bytes") or key.endswith("_bytes"):
        return size(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return count(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def label(key: str, siblings: Any = ()) -> str:
    """A figure's name for people: 'cost_usd' -> 'cost'; 'may_have_billed_usd' -> 'may have billed
    cost' when a count 'may_have_billed' is among ``siblings``."""
    base = key.removesuffix("_usd")
    text = base.replace("_", " ")
    return f"{text} cost" if base != key and base in siblings else text

"""The one clock of the core.

Everything that depends on "now" — planning (due users, nightly windows), shutdown dates of models,
the month of a budget, the time stamps of records and ledger lines — asks the core's clock, a
plain ``Callable[[], datetime]`` returning an aware UTC instant. Production uses ``system_clock``;
``--now`` / ``MIRROR_NOW`` run the core *as of* another instant (``starting_at``: time still moves
forward from there, so a run's durations stay real); tests pin it with ``PinnedClock``.

Leases of job claims are the one exception that must stay on the machine's real time: they are
read by *other* processes (another tick, another shard, a server) that do not share a shifted
clock. ``wall_clock`` is the single place that reads it, and a pipeline can be given another one
(tests do).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from .errors import UsageError

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The machine's time, in UTC."""
    return datetime.now(UTC)


# Leases are compared across processes: always the machine's time (see the module docstring).
wall_clock: Clock = system_clock


def today(clock: Clock) -> date:
    """The UTC calendar day of ``clock`` (the day shutdown dates and budgets are counted in)."""
    return clock().astimezone(UTC).date()


def starting_at(instant: datetime, base: Clock = system_clock) -> Clock:
    """A clock that reads ``instant`` now and moves on at the pace of ``base``."""
    offset = instant - base()

    def shifted() -> datetime:
        return base() + offset

    return shifted


class PinnedClock:
    """A clock that stands still until told to move: for tests and simulations (``advance``/``set``)."""

    def __init__(self, at: datetime) -> None:
        self.at = _aware(at, "PinnedClock")

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at

    def set(self, at: datetime) -> None:
        self.at = _aware(at, "PinnedClock")


def parse_instant(text: str, field: str = "--now") -> datetime:
    """An ISO-8601 instant with its UTC offset (``2026-03-29T01:30:00Z``, ``…+02:00``).

    A naive time is refused: "02:30" means a different instant in every zone."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.removesuffix("Z") + ("+00:00" if raw.endswith("Z") else ""))
    except ValueError:
        raise UsageError(
            f"{field} {text!r} is not an ISO-8601 instant.",
            f"Write it as e.g. {field} 2026-03-29T01:30:00Z or 2026-03-29T03:30:00+02:00.",
        ) from None
    return _aware(value, field)


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(
            f"{field} {value.isoformat()} has no UTC offset.",
            f"Add one, e.g. {value.isoformat()}Z for UTC or {value.isoformat()}+02:00.",
        )
    return value.astimezone(UTC)

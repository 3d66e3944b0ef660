"""Evolution stages, their thresholds and milestone logic (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import UnknownStageError

STAGE_ORDER: tuple[str, ...] = (
    "newReflection",
    "firstWeek",
    "twoWeeks",
    "month",
    "quarter",
    "halfYear",
)
TRILOGY_KINDS: tuple[str, ...] = ("original", "current", "future2048")


@dataclass(frozen=True)
class StageDef:
    name: str
    from_day: int
    label: str


def _squash(name: str) -> str:
    return re.sub(r"[-_\s]", "", name).lower()


def canonical_name(raw: str, known: Iterable[str], what: str = "stage") -> str:
    """Accept camelCase, snake_case and kebab-case (any letter case) and return the canonical name."""
    names = list(known)
    wanted = _squash(raw)
    for name in names:
        if _squash(name) == wanted:
            return name
    raise UnknownStageError(
        f"Unknown {what} {raw!r}.",
        f"Use one of: {', '.join(names)} (camelCase, snake_case and kebab-case all work).",
    )


class StageTable:
    """The ordered stages with the active-day threshold at which each begins."""

    def __init__(self, stages: Sequence[StageDef], trilogy: Sequence[str] = TRILOGY_KINDS) -> None:
        ordered = sorted(stages, key=lambda s: s.from_day)
        if [s.name for s in ordered] != [s.name for s in stages]:
            raise ValueError("stages must be listed in increasing from_day order")
        self.stages: tuple[StageDef, ...] = tuple(ordered)
        self.trilogy: tuple[str, ...] = tuple(trilogy)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def get(self, name: str) -> StageDef:
        canon = canonical_name(name, self.names)
        return next(s for s in self.stages if s.name == canon)

    def parse_stage(self, raw: str) -> str:
        return canonical_name(raw, self.names)

    def parse_target(self, raw: str) -> str:
        """A stage or a trilogy kind."""
        return canonical_name(raw, [*self.names, *self.trilogy], what="stage or trilogy kind")

    def index(self, name: str) -> int:
        return self.names.index(self.parse_stage(name))

    def stage_for_days(self, active_days: int) -> str:
        """The stage reached after ``active_days`` days of activity."""
        reached = self.stages[0].name
        for stage in self.stages:
            if active_days >= stage.from_day:
                reached = stage.name
        return reached

    def crossed(self, previous_stage: str | None, active_days: int) -> list[str]:
        """Stages reached since ``previous_stage`` (exclusive), in order; empty if none."""
        target = self.index(self.stage_for_days(active_days))
        start = -1 if previous_stage is None else self.index(previous_stage)
        return self.names[start + 1 : target + 1]

    def is_due(self, latest_stage: str | None, active_days: int) -> bool:
        return bool(self.crossed(latest_stage, active_days))

    def previous(self, name: str) -> str | None:
        i = self.index(name)
        return self.names[i - 1] if i > 0 else None

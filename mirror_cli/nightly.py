"""Each user's own night: IANA time zones and the local window the nightly tick serves them in.

A window is a local wall-clock range (default 02:00-06:00) turned into a UTC interval for one
local date with the zone's rules, so daylight-saving nights come out right:

- spring forward: a start or end that falls in the skipped hour moves forward by the gap (as
  the clocks do), so the window is shorter that night but still there;
- fall back: a start in the repeated hour is its first occurrence and an end its second one, so
  the window is longer that night and is still one interval: a user is served once in it.

The due index stores, per user, the UTC instant (epoch seconds) at which the window the user is
next to be served in opens (``next_open``). An hourly tick asks the store for due users whose
window has opened, serves those whose local time is inside it, and moves the others (their
window passed unserved: ticks were missed) to the next night's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UsageError

# IANA names: letters, digits and _ + - / (e.g. America/Argentina/Buenos_Aires, Etc/GMT+5).
ZONE_MAX_LENGTH = 64


@lru_cache(maxsize=1024)
def _load(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_problem(name: object) -> str | None:
    """Why ``name`` is not a time zone this tool can use (None: it is one)."""
    if not isinstance(name, str) or not name or len(name) > ZONE_MAX_LENGTH:
        return f"{name!r} is not an IANA time zone name (at most {ZONE_MAX_LENGTH} characters)"
    if name.startswith("/") or ".." in name or not all(c.isalnum() or c in "_+-/" for c in name):
        return f"{name!r} is not an IANA time zone name"
    if _load(name) is None:
        return f"unknown time zone {name!r}"
    return None


def check_zone(name: str, field: str = "timezone") -> str:
    """``name`` if it is a known IANA zone; else a usage error naming the field and the value."""
    problem = zone_problem(name)
    if problem is not None:
        raise UsageError(
            f"{field}: {problem}.",
            "Use an IANA zone name such as Europe/Berlin, Asia/Kolkata or America/St_Johns "
            "(python -c 'import zoneinfo; print(sorted(zoneinfo.available_timezones()))' lists them).",
        )
    return name


def zone(name: str) -> ZoneInfo:
    found = _load(check_zone(name))
    assert found is not None
    return found


def epoch(instant: datetime) -> int:
    """Whole seconds since 1970 (UTC): the stored, queryable form of an instant."""
    return int(instant.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def parse_clock(text: str, field: str) -> time:
    """'HH:MM' (24-hour) as a wall-clock time."""
    try:
        hh, mm = text.split(":")
        value = time(int(hh), int(mm))
    except ValueError:
        raise ValueError(f"{field} {text!r} is not a time of day HH:MM (24-hour)") from None
    if len(hh) != 2 or len(mm) != 2:
        raise ValueError(f"{field} {text!r} is not a time of day HH:MM (24-hour)")
    return value


def _to_utc(day: date, wall: time, tz: ZoneInfo, *, latest: bool) -> datetime:
    """The instant the local wall-clock ``wall`` on ``day`` names. In a gap (spring forward)
    the time is moved on by the gap; in a repeated hour (fall back) it is the first occurrence,
    or the second with ``latest``."""
    local = datetime.combine(day, wall, tzinfo=tz)
    first = local.replace(fold=0).astimezone(UTC)
    second = local.replace(fold=1).astimezone(UTC)
    if first == second:
        return first
    if first.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        # A wall time that does not exist: fold=0 reads it with the offset before the change,
        # which lands after the gap, by as much as the clocks moved.
        return max(first, second)
    return max(first, second) if latest else min(first, second)


@dataclass(frozen=True)
class Window:
    """A local nightly window [start, end); an end at or before the start crosses midnight."""

    start: time
    end: time

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def length(self) -> timedelta:
        """Its length on a night without a clock change."""
        a = timedelta(hours=self.start.hour, minutes=self.start.minute)
        b = timedelta(hours=self.end.hour, minutes=self.end.minute)
        return b - a if b > a else b - a + timedelta(days=1)

    def on(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The UTC interval of the window that opens on local date ``day``."""
        start = _to_utc(day, self.start, tz, latest=False)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return start, _to_utc(end_day, self.end, tz, latest=True)

    def _nights(self, now: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
        today = now.astimezone(tz).date()
        return [self.on(today + timedelta(days=d), tz) for d in (-1, 0, 1, 2)]

    def current(self, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The window ``now`` is inside, if any."""
        for start, end in self._nights(now, tz):
            if start <= now < end:
                return start, end
        return None

    def contains(self, now: datetime, tz: ZoneInfo) -> bool:
        return self.current(now, tz) is not None

    def next_start(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The first window opening strictly after ``now``."""
        return min(start for start, _ in self._nights(now, tz) if start > now)

    def next_open(self, now: datetime, tz: ZoneInfo) -> datetime:
        """When the window a user is to be served in opens: the current one if ``now`` is inside
        it (already open), else the next one."""
        current = self.current(now, tz)
        return current[0] if current is not None else self.next_start(now, tz)

    def after_served(self, now: datetime, tz: ZoneInfo) -> datetime:
        """Served at ``now``: the next window opens after the current one (never the same night)."""
        current = self.current(now, tz)
        return self.next_start(current[1] if current is not None else now, tz)

"""`mirror purge-cache`: drop expired cache entries and their images, never an avatar that a
user's timeline still shows, never a fallback asset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .stores.base import Store


@dataclass
class PurgeReport:
    dry_run: bool
    examined: int = 0
    entries_removed: int = 0
    images_removed: int = 0
    bytes_freed: int = 0
    kept_in_timeline: int = 0
    removed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def purge(
    store: Store,
    *,
    protected: dict[str, set[str]],
    users: list[str] | None,
    older_than: timedelta | None,
    now: datetime,
    dry_run: bool,
) -> PurgeReport:
    """``protected`` maps a user to the avatar ids their timeline shows (latest per stage)."""
    report = PurgeReport(dry_run=dry_run)
    entries = [e for u in users for e in store.cache_entries(u)] if users else store.cache_entries()
    for entry in entries:
        report.examined += 1
        if older_than is not None and now - entry.created_at < older_than:
            continue
        record = store.get_avatar(entry.user_id, entry.avatar_id)
        keep_image = record is None or entry.avatar_id in protected.get(entry.user_id, set())
        report.entries_removed += 1
        report.removed.append(
            {
                "user": entry.user_id,
                "request_key": entry.request_key,
                "avatar_id": entry.avatar_id,
                "image": "kept" if keep_image else "deleted",
            }
        )
        if keep_image:
            report.kept_in_timeline += 1 if record is not None else 0
        elif record is not None:
            for ref in (record.image_path, record.thumb_path):
                if ref:
                    report.bytes_freed += store.image_size(ref)
                    report.images_removed += 1
                    if not dry_run:
                        store.delete_image(ref)
            if not dry_run:
                store.delete_avatar(entry.user_id, entry.avatar_id)
        if not dry_run:
            store.cache_delete(entry.user_id, entry.request_key)
    return report


def parse_age(text: str) -> timedelta:
    from .errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    hint = "Use a positive number and a unit, at most 100 years: 30d, 12h, 2w, 90m."
    try:
        value, unit = float(text[:-1]), text[-1].lower()
        seconds = value * units[unit]
    except (ValueError, KeyError, IndexError):
        raise UsageError(f"Invalid age {text[:40]!r}.", hint) from None
    if not 0 <= seconds <= MAX_AGE_S:  # NaN fails this too
        raise UsageError(f"--older-than {text[:40]} is out of range (0 to 100 years).", hint)
    return timedelta(seconds=seconds)


MAX_AGE_S = 100 * 365 * 86400

"""The reports concern of a store: one Protocol, implemented by the local store
(stores/local/reports.py) and the Firebase store (stores/firebase/reports.py), tested by one
contract suite (tests/test_reports.py). What a report means lives in mirror_cli/reporting.py."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..models import Report, ReportStatus, validate_user_id


class ReportLimitReached(Exception):
    """The user filed their daily number of reports already."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} reports a day")
        self.limit = limit


def report_id(uid: str, avatar_id: str) -> str:
    """One report per avatar: reporting it again finds the same one (idempotent across instances)."""
    digest = hashlib.sha256(f"{validate_user_id(uid)}/{avatar_id}".encode()).hexdigest()
    return f"rep-{digest[:24]}"


@runtime_checkable
class ReportStore(Protocol):
    """Reports on avatars, the avatar's ``hidden_by`` mark they set, and the per-user daily count
    that rate-limits them (kept in the store, so it holds across server instances)."""

    def file_report(self, report: Report, day: str, daily_limit: int | None) -> tuple[Report, bool]:
        """Atomically: when a report with this id is open or removed, return it and False (a
        repeat changes nothing and is not counted); else count it against the user's ``day``
        (raising ReportLimitReached past ``daily_limit``; None: no limit), store it (a restored
        report is reopened, its earlier resolution kept in ``history``), mark the avatar hidden
        by it, and return it and True. An avatar the store does not have is not hidden."""
        ...

    def get_report(self, report_id: str) -> Report | None: ...
    def list_reports(
        self, status: ReportStatus | None = None, uid: str | None = None, limit: int = 100
    ) -> list[Report]:
        """Reports, newest first, optionally of one status and/or one user."""
        ...

    def resolve_report(self, report_id: str, status: ReportStatus, by: str, note: str, at: datetime) -> Report | None:
        """Set the outcome and show (``restored``) or keep hiding (``removed``) the avatar, in
        one write; None when there is no such report."""
        ...

    def report_counts(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
        """How many reports filed in [since, until) are in each status."""
        ...

    def forget_reports(self, uid: str) -> int:
        """Erasure: the user's reports and their daily counts."""
        ...


def refiled(existing: Report | None, report: Report) -> Report | None:
    """What filing ``report`` stores given the one already there: itself when there is none, the
    same report reopened when the last was restored (its resolution kept in ``history``), and
    nothing when it is open or removed (a repeat)."""
    if existing is None:
        return report
    if existing.status != "restored":
        return None
    earlier = {
        "reason": existing.reason,
        "filed_at": existing.created_at.isoformat(),
        "status": existing.status,
        "resolved_by": existing.resolved_by,
        "resolution_note": existing.resolution_note,
        "resolved_at": existing.resolved_at.isoformat() if existing.resolved_at else None,
    }
    return report.model_copy(update={"history": [*existing.history, earlier][-10:]})


def resolved(report: Report, status: ReportStatus, by: str, note: str, at: datetime) -> Report:
    return report.model_copy(update={"status": status, "resolved_by": by, "resolution_note": note, "resolved_at": at})

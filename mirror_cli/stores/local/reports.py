"""Reports on avatars (migration 10): one row per report, the hiding mark on the avatar's record
(``hidden_by``, set in the same transaction) and one row per user and day counting the reports
they filed (the rate limit, shared by every process on this file)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from ...models import Report, ReportStatus, validate_user_id
from ..reports import ReportLimitReached, refiled, resolved
from .db import LocalDb
from .forget import refuse_erased
from .schema import iso

_NO_ARGS: tuple[Any, ...] = ()


def _read(db: sqlite3.Connection, report_id: str) -> Report | None:
    row = db.execute("SELECT body FROM reports WHERE id = ?", (report_id,)).fetchone()
    return Report.model_validate_json(row[0]) if row else None


def _write(db: sqlite3.Connection, report: Report, hidden_by: str | None) -> None:
    db.execute(
        "INSERT INTO reports(id, uid, status, created_at, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE "
        "SET status = excluded.status, created_at = excluded.created_at, body = excluded.body",
        (report.id, report.user_id, report.status, iso(report.created_at), report.model_dump_json()),
    )
    db.execute(
        "UPDATE avatars SET record = json_set(record, '$.hidden_by', ?) WHERE uid = ? AND id = ?",
        (hidden_by, report.user_id, report.avatar_id),
    )


class Reports(LocalDb):
    def file_report(self, report: Report, day: str, daily_limit: int | None) -> tuple[Report, bool]:
        refuse_erased(self, validate_user_id(report.user_id))
        with self.transaction() as db:
            existing = _read(db, report.id)
            stored = refiled(existing, report)
            if stored is None:
                assert existing is not None
                return existing, False
            if daily_limit is not None:
                row = db.execute("SELECT n FROM report_quota WHERE uid = ? AND day = ?", (report.user_id, day))
                used = (row.fetchone() or (0,))[0]
                if used >= daily_limit:
                    raise ReportLimitReached(daily_limit)
                db.execute(
                    "INSERT INTO report_quota(uid, day, n) VALUES (?, ?, 1) "
                    "ON CONFLICT(uid, day) DO UPDATE SET n = n + 1",
                    (report.user_id, day),
                )
            _write(db, stored, stored.id)
        self._count("writes", 3)
        return stored, True

    def get_report(self, report_id: str) -> Report | None:
        rows = self._q("SELECT body FROM reports WHERE id = ?", (report_id,))
        return Report.model_validate_json(rows[0][0]) if rows else None

    def list_reports(
        self, status: ReportStatus | None = None, uid: str | None = None, limit: int = 100
    ) -> list[Report]:
        sql, args = "SELECT body FROM reports WHERE 1 = 1", _NO_ARGS
        if status is not None:
            sql, args = sql + " AND status = ?", (*args, status)
        if uid is not None:
            sql, args = sql + " AND uid = ?", (*args, validate_user_id(uid))
        rows = self._q(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", (*args, limit))
        return [Report.model_validate_json(r[0]) for r in rows]

    def resolve_report(self, report_id: str, status: ReportStatus, by: str, note: str, at: datetime) -> Report | None:
        if not self._ready and not (self.root / "mirror.db").exists():
            return None
        with self.transaction() as db:
            existing = _read(db, report_id)
            if existing is None:
                return None
            done = resolved(existing, status, by, note, at)
            _write(db, done, None if status == "restored" else done.id)
        self._count("writes", 2)
        return done

    def report_counts(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
        sql, args = "SELECT status, COUNT(*) FROM reports WHERE 1 = 1", _NO_ARGS
        if since is not None:
            sql, args = sql + " AND created_at >= ?", (*args, iso(since))
        if until is not None:
            sql, args = sql + " AND created_at < ?", (*args, iso(until))
        return {status: n for status, n in self._q(sql + " GROUP BY status ORDER BY status", args)}

    def forget_reports(self, uid: str) -> int:
        """Erasure: the user's reports (with the prompts copied into them) and their daily counts."""
        db = self._open()
        n: int = db.execute("DELETE FROM reports WHERE uid = ?", (validate_user_id(uid),)).rowcount
        db.execute("DELETE FROM report_quota WHERE uid = ?", (uid,))
        self._count("deletes", 2)
        return n

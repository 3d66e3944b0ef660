"""Limits and reservations: every cap checked and the amount held in one write transaction."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta

from ..base import Caps, LimitReached, Reservation
from ..rates import RateTaken, gcra
from .db import LocalDb
from .schema import iso

# Reservations that count against caps: settled ones, and held ones that are not stale.
_USER_DAY_SQL = """SELECT COUNT(*) FROM reservations WHERE day = ? AND uid = ?
    AND (state = 'settled' OR (state = 'held' AND created_at >= ?))"""
_SYSTEM_DAY_SQL = """SELECT COUNT(*) FROM reservations WHERE day = ?
    AND (state = 'settled' OR (state = 'held' AND created_at >= ?))"""
_MONTH_SPENT_SQL = """SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE month = ?
    AND (state = 'settled' OR (state = 'held' AND created_at >= ?))"""

_SETTLE_SQL = "UPDATE reservations SET state = 'settled', amount = ? WHERE id = ?"
_SETTLE_HELD_SQL = _SETTLE_SQL + " AND state = 'held'"
_RELEASE_SQL = "UPDATE reservations SET state = 'released' WHERE id = ?"
_RELEASE_HELD_SQL = _RELEASE_SQL + " AND state = 'held'"

# A held reservation older than this is a crashed job's: it no longer counts against caps.
STALE_RESERVATION = timedelta(hours=2)


def _check_caps(db: sqlite3.Connection, uid: str, amount: float, now: datetime, caps: Caps) -> None:
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    fresh = iso(now - STALE_RESERVATION)
    if caps.per_user_daily is not None:
        (n,) = db.execute(_USER_DAY_SQL, (day, uid, fresh)).fetchone()
        if n >= caps.per_user_daily:
            raise LimitReached("per_user_daily", f"user {uid} reached {caps.per_user_daily} generations today")
    if caps.system_daily is not None:
        (n,) = db.execute(_SYSTEM_DAY_SQL, (day, fresh)).fetchone()
        if n >= caps.system_daily:
            raise LimitReached("system_daily", f"the system reached {caps.system_daily} generations today")
    if caps.monthly_budget_usd is not None:
        (spent,) = db.execute(_MONTH_SPENT_SQL, (month, fresh)).fetchone()
        if spent + amount > caps.monthly_budget_usd + 1e-9:
            raise LimitReached(
                "monthly_budget",
                f"the monthly budget of ${caps.monthly_budget_usd:.2f} would be exceeded "
                f"(${spent:.4f} committed, this job needs ${amount:.4f})",
            )


class Limits(LocalDb):
    def reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation:
        """Atomically check every cap and hold ``amount``; raises LimitReached without holding anything."""
        res = Reservation(uuid.uuid4().hex, uid, amount, now.strftime("%Y-%m-%d"), now.strftime("%Y-%m"))
        with self.transaction() as db:
            _check_caps(db, uid, amount, now, caps)
            db.execute(
                "INSERT INTO reservations(id, uid, day, month, amount, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'held', ?)",
                (res.id, uid, res.day, res.month, amount, iso(now)),
            )
        self._count("writes")
        return res

    def settle(self, reservation: Reservation, actual: float, *, only_held: bool = False) -> None:
        sql = _SETTLE_HELD_SQL if only_held else _SETTLE_SQL
        self._q(sql, (actual, reservation.id), op="writes")

    def release(self, reservation: Reservation, *, only_held: bool = False) -> None:
        self._q(_RELEASE_HELD_SQL if only_held else _RELEASE_SQL, (reservation.id,), op="writes")

    def forget_reservations(self, uid: str) -> int:
        """Erasure: the user's reservations (spend is kept by the ledger, under a pseudonym)."""
        return self._open().execute("DELETE FROM reservations WHERE uid = ?", (uid,)).rowcount

    def take_rate(self, bucket: str, interval_s: float, burst: int, max_wait_s: float, now: float) -> RateTaken:
        """The bucket's TAT is a meta row (``rate:<bucket>``), read and written in one transaction."""
        key = f"rate:{bucket}"
        with self.transaction() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            answer, tat = gcra(float(row[0]) if row else None, now, interval_s, burst, max_wait_s)
            if answer.taken:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, repr(tat)))
        self._count("writes" if answer.taken else "reads")
        return answer

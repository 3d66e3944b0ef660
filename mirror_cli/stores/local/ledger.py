"""The ledger: append-only events (idempotent by event id), read back in time order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ...models import LedgerEvent
from .db import LocalDb
from .forget import id_pattern, with_names_user
from .schema import iso, timing_values

_INSERT_EVENT = """INSERT OR IGNORE INTO ledger(event_id, ts, uid, kind, event,
    queue_wait_s, provider_s, post_process_s, store_s, total_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


class Ledger(LocalDb):
    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool:
        """Append an event; an event_id makes the write idempotent (returns False on a repeat)."""
        cur = self._open().execute(
            _INSERT_EVENT,
            (
                event_id or uuid.uuid4().hex,
                iso(event.ts),
                event.user_id,
                event.kind,
                event.model_dump_json(),
                *timing_values(event.timings),
            ),
        )
        self._count("writes")
        return cur.rowcount == 1

    def events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> list[LedgerEvent]:
        return list(self.iter_events(since, until, uid))

    def iter_events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None, page: int = 1000
    ) -> Iterator[LedgerEvent]:
        end, who = (iso(until) if until else None), uid
        last_ts, last_id = (iso(since) if since else ""), ""
        while True:
            rows = self._q(
                # ts >= ? first: the index on ts starts each page where the last one ended
                "SELECT ts, event_id, event FROM ledger WHERE ts >= ? AND (ts > ? OR event_id >= ?) "
                "AND (? IS NULL OR ts < ?) AND (? IS NULL OR uid = ?) ORDER BY ts, event_id LIMIT ?",
                (last_ts, last_ts, last_id, end, end, who, who, page),
            )
            for _, _, event in rows:
                yield LedgerEvent.model_validate_json(event)
            if len(rows) < page:
                return
            last_ts, last_id = rows[-1][0], rows[-1][1] + "\x00"  # strictly after the last one

    def month_paid_usd(self, month: str, uid: str | None = None) -> float:
        sql = (
            "SELECT COALESCE(SUM(json_extract(event, '$.cost_usd')), 0) FROM ledger "
            "WHERE kind IN ('generated', 'spool_ingest', 'may_have_billed') AND ts >= ? AND ts < ?"
        )
        year, mon = (int(x) for x in month.split("-"))
        start = f"{year:04d}-{mon:02d}-01"
        end = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}-01"
        args: tuple[Any, ...] = (start, end)
        if uid:
            sql += " AND uid = ?"
            args = (*args, uid)
        rows = self._q(sql, args)
        return float(rows[0][0]) if rows else 0.0

    def pseudonymise_ledger(self, uid: str, alias: str) -> int:
        """Erasure: the user's events keep their cost, time and kind, with every mention of the
        user (uid, event id, detail) replaced by ``alias``; totals do not change."""
        pattern = id_pattern(uid)
        n = 0
        with self.transaction() as db:
            rows = (
                with_names_user(db)
                .execute(
                    "SELECT event_id, event FROM ledger "
                    "WHERE uid = ? OR names_user(event_id, ?) OR names_user(event, ?)",
                    (uid, uid, uid),
                )
                .fetchall()
            )
            for event_id, event in rows:
                db.execute(
                    "UPDATE OR REPLACE ledger SET event_id = ?, uid = ?, event = ? WHERE event_id = ?",
                    (pattern.sub(alias, event_id), alias, pattern.sub(alias, event), event_id),
                )
                n += 1
        return n

"""The usage ledger and its distributed counters."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from ...models import LedgerEvent
from ..local.forget import id_pattern
from .client import MICRO, FirebaseClient, _iso, _wrap
from .forget import BATCH, field_is

# Shards of each day's and month's usage counters: a write lands on one at random.
USAGE_SHARDS = 64
PAID_KINDS = ("generated", "spool_ingest")
SPEND_KINDS = (*PAID_KINDS, "may_have_billed")  # month-to-date spend counts what may have been billed


class Ledger(FirebaseClient):
    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool:
        """Append an event and count it, in one atomic batch: the ledger document is created
        (a repeated event_id fails the whole batch: counted once) and one random shard of the
        day's and the month's distributed counters is incremented (no hot document)."""
        from google.api_core.exceptions import AlreadyExists, Conflict
        from google.cloud.firestore import Increment

        eid = (event_id or uuid.uuid4().hex).replace("/", "_")
        ts = _iso(event.ts)
        body = {**json.loads(event.model_dump_json()), "ts": ts, "seq": f"{ts}|{eid}", "uid": event.user_id}
        micro = round(event.cost_usd * MICRO)
        counted = {event.kind: Increment(event.count), "cost_micro_usd": Increment(micro)}
        if event.kind in SPEND_KINDS:
            counted["paid_micro_usd"] = Increment(micro)
        j = random.randrange(USAGE_SHARDS)
        batch = self.db.batch()
        batch.create(self.db.collection("ledger").document(eid), body)
        batch.set(self.db.collection("usage_daily").document(f"{ts[:10]}.{j}"), {**counted, "day": ts[:10]}, merge=True)
        batch.set(
            self.db.collection("usage_monthly").document(f"{ts[:7]}.{j}"), {**counted, "month": ts[:7]}, merge=True
        )
        try:
            batch.commit(**self._rt)
        except (AlreadyExists, Conflict):
            return False
        except Exception as exc:
            raise _wrap(exc, "writing the usage ledger") from exc
        self._count("writes", 3)
        return True

    def usage_counters(self, period: str, key: str) -> dict[str, int]:
        """The sum of a day's (period 'day', key YYYY-MM-DD) or a month's ('month', YYYY-MM)
        counter shards: event counts per kind and cost_micro_usd. At most USAGE_SHARDS reads."""
        from google.cloud.firestore import FieldFilter

        collection = "usage_daily" if period == "day" else "usage_monthly"
        with self._rpc("reading usage counters"):
            query = self.db.collection(collection).where(filter=FieldFilter(period, "==", key))
            docs = list(self._record(query).stream(**self._rt))
        self._count("reads", max(1, len(docs)))
        total: dict[str, int] = {}
        for d in docs:
            for k, v in (d.to_dict() or {}).items():
                if isinstance(v, int):
                    total[k] = total.get(k, 0) + v
        return total

    def events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> list[LedgerEvent]:
        return list(self.iter_events(since, until, uid))

    def iter_events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> Iterator[LedgerEvent]:
        from google.cloud.firestore import FieldFilter

        query = self.db.collection("ledger").where(filter=FieldFilter("seq", "<", _iso(until) if until else "~"))
        if uid:
            query = query.where(filter=FieldFilter("uid", "==", uid))
        for snap in self._keyset(
            query, "seq", "reading the usage ledger", start=_iso(since) if since else "", inclusive=True
        ):
            d = snap.to_dict() or {}
            for extra in ("seq", "uid"):
                d.pop(extra, None)
            yield LedgerEvent.model_validate(d)

    def month_paid_usd(self, month: str, uid: str | None = None) -> float:
        """The month's counter shards (at most USAGE_SHARDS reads); one user's from the ledger."""
        if uid is None:
            return self.usage_counters("month", month).get("paid_micro_usd", 0) / MICRO
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=UTC)
        end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
        return sum(e.cost_usd for e in self.iter_events(start, end, uid) if e.kind in SPEND_KINDS)

    def pseudonymise_ledger(self, uid: str, alias: str) -> int:
        """Erasure: each of the user's events is moved to a document naming ``alias`` instead
        (cost, time and kind kept; the usage counters are untouched), a page at a time: one
        batch of <= 500 writes (a create and a delete per event)."""
        pattern, n = id_pattern(uid), 0
        query = field_is(self.db.collection("ledger"), "uid", uid).limit(BATCH // 2)
        with self._rpc("re-keying the ledger"):
            while True:
                docs = list(self._record(query).stream(**self._rt))
                if not docs:
                    return n
                batch = self.db.batch()
                for doc in docs:
                    eid = pattern.sub(alias, doc.id)
                    body = json.loads(pattern.sub(alias, json.dumps(doc.to_dict() or {})))
                    body.update(uid=alias, user_id=alias, seq=f"{body.get('ts', '')}|{eid}")
                    batch.set(self.db.collection("ledger").document(eid), body)
                    batch.delete(doc.reference)
                batch.commit(**self._rt)
                self._count("writes", 2 * len(docs))
                n += len(docs)

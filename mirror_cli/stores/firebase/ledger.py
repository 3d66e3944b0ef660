"""The usage ledger and its distributed counters."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime

from ...models import LedgerEvent
from .client import MICRO, FirebaseClient, _iso, _wrap

# Shards of each day's and month's usage counters: a write lands on one at random.
USAGE_SHARDS = 64


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
        counted = {event.kind: Increment(1), "cost_micro_usd": Increment(round(event.cost_usd * MICRO))}
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
        try:
            docs = list(self.db.collection(collection).where(filter=FieldFilter(period, "==", key)).stream(**self._rt))
        except Exception as exc:
            raise _wrap(exc, "reading usage counters") from exc
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
        from google.cloud.firestore import FieldFilter

        query = self.db.collection("ledger").where(filter=FieldFilter("seq", "<", _iso(until) if until else "~"))
        if uid:
            query = query.where(filter=FieldFilter("uid", "==", uid))
        out = []
        for snap in self._keyset(
            query, "seq", "reading the usage ledger", start=_iso(since) if since else "", inclusive=True
        ):
            d = snap.to_dict() or {}
            for extra in ("seq", "uid"):
                d.pop(extra, None)
            out.append(LedgerEvent.model_validate(d))
        return out

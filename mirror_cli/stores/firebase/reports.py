"""Reports on avatars: ``reports/{id}`` (the report, with ``user_id``, ``status`` and an ISO
``created_at`` to query on), the hiding mark on ``users/{uid}/avatars/{id}`` (``hidden_by``) and
``report_quota/{uid}.{day}`` counting the reports a user filed that day (the rate limit, shared
by every instance). Filing and resolving are Firestore transactions, so the report, the mark and
the count change together. Only the server writes them (firestore.rules deny every app user)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ...models import Report, ReportStatus, validate_user_id
from ..reports import ReportLimitReached, refiled, resolved
from .client import FirebaseClient, _iso, _wrap
from .forget import delete_all, field_is, refuse_erased


def _body(report: Report) -> dict[str, Any]:
    return {**json.loads(report.model_dump_json()), "created_at": _iso(report.created_at)}


def _report(data: dict[str, Any] | None) -> Report:
    return Report.model_validate(data or {})


class Reports(FirebaseClient):
    def _reports(self) -> Any:
        return self.db.collection("reports")

    def _avatar_doc(self, report: Report) -> Any:
        return self._users().document(report.user_id).collection("avatars").document(report.avatar_id)

    def file_report(self, report: Report, day: str, daily_limit: int | None) -> tuple[Report, bool]:
        from google.cloud import firestore

        refuse_erased(self, validate_user_id(report.user_id))
        ref, avatar = self._reports().document(report.id), self._avatar_doc(report)
        quota = self.db.collection("report_quota").document(f"{report.user_id}.{day}")

        @firestore.transactional
        def file(tx: Any) -> tuple[Report, bool]:
            snap = ref.get(transaction=tx)
            existing = _report(snap.to_dict()) if snap.exists else None
            stored = refiled(existing, report)
            if stored is None:
                assert existing is not None
                return existing, False
            used = 0
            if daily_limit is not None:
                used = int((quota.get(transaction=tx).to_dict() or {}).get("n", 0))
                if used >= daily_limit:
                    raise ReportLimitReached(daily_limit)
            shown = avatar.get(transaction=tx).exists
            if daily_limit is not None:
                tx.set(quota, {"n": used + 1, "uid": report.user_id, "day": day})
            tx.set(ref, _body(stored))
            if shown:
                tx.update(avatar, {"hidden_by": stored.id})
            return stored, True

        try:
            result: tuple[Report, bool] = file(self.db.transaction())
        except ReportLimitReached:
            raise
        except Exception as exc:
            raise _wrap(exc, f"filing a report on avatar {report.avatar_id}") from exc
        self._count("reads", 3)
        self._count("writes", 3 if result[1] else 0)
        return result

    def get_report(self, report_id: str) -> Report | None:
        with self._rpc(f"reading report {report_id}", "reads"):
            snap = self._reports().document(report_id).get(**self._rt)
        return _report(snap.to_dict()) if snap.exists else None

    def list_reports(
        self, status: ReportStatus | None = None, uid: str | None = None, limit: int = 100
    ) -> list[Report]:
        from google.cloud.firestore import FieldFilter, Query

        query = self._reports()
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status))
        if uid is not None:
            query = query.where(filter=FieldFilter("user_id", "==", validate_user_id(uid)))
        query = query.order_by("created_at", direction=Query.DESCENDING).limit(limit)
        with self._rpc("listing reports"):
            docs = list(self._record(query).stream(**self._rt))
        self._count("reads", max(1, len(docs)))
        return sorted((_report(d.to_dict()) for d in docs), key=lambda r: (r.created_at, r.id), reverse=True)

    def resolve_report(self, report_id: str, status: ReportStatus, by: str, note: str, at: datetime) -> Report | None:
        from google.cloud import firestore

        ref = self._reports().document(report_id)

        @firestore.transactional
        def resolve(tx: Any) -> Report | None:
            snap = ref.get(transaction=tx)
            if not snap.exists:
                return None
            done = resolved(_report(snap.to_dict()), status, by, note, at)
            avatar = self._avatar_doc(done)
            shown = avatar.get(transaction=tx).exists
            tx.set(ref, _body(done))
            if shown:
                tx.update(avatar, {"hidden_by": None if status == "restored" else done.id})
            return done

        with self._rpc(f"resolving report {report_id}"):
            done: Report | None = resolve(self.db.transaction())
        self._count("reads", 2)
        self._count("writes", 2 if done else 0)
        return done

    def report_counts(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, int]:
        """One count() aggregation per status (no document is read)."""
        from google.cloud.firestore import FieldFilter

        from ...models import REPORT_STATUSES

        counts: dict[str, int] = {}
        for status in REPORT_STATUSES:
            query = self._reports().where(filter=FieldFilter("status", "==", status))
            if since is not None:
                query = query.where(filter=FieldFilter("created_at", ">=", _iso(since)))
            if until is not None:
                query = query.where(filter=FieldFilter("created_at", "<", _iso(until)))
            with self._rpc("counting reports", "reads"):
                result = self._record(query).count().get(**self._rt)
            n = int(result[0][0].value)
            if n:
                counts[status] = n
        return counts

    def forget_reports(self, uid: str) -> int:
        """Erasure: the user's reports (with the prompts copied into them) and their daily counts."""
        validate_user_id(uid)
        n = delete_all(self, field_is(self._reports(), "user_id", uid), "reports")
        delete_all(self, field_is(self.db.collection("report_quota"), "uid", uid), "report counts")
        return n

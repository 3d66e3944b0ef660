"""Erasure bookkeeping on Firestore: the pseudonym (``erased-`` + HMAC-SHA256 of the uid, the key
in ``store_meta/erasure``) and the tombstones (``erased_users/<pseudonym>``, kept after the
erasure: the store then refuses every write that would store the user again). While an erasure
is under way ``erasures_pending/<pseudonym>`` holds the user id, so the nightly run can finish one a
crash left half-done; it is deleted last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..base import RunInfo
from .client import FirebaseClient, _iso, _wrap
from .forget import is_erased, pseudonym, tombstone


class Erasure(FirebaseClient):
    def pseudonym(self, uid: str) -> str:
        return pseudonym(self, uid)

    def _pending(self, uid: str) -> Any:
        return self.db.collection("erasures_pending").document(self.pseudonym(uid))

    def put_tombstone(self, uid: str, at: datetime) -> None:
        """Idempotent: the first erasure's time is kept. The erasure is marked as under way first
        (a crash between the two leaves a marker the nightly run finishes)."""
        from google.api_core.exceptions import AlreadyExists, Conflict

        try:
            self._pending(uid).set({"uid": uid, "at": _iso(at)}, **self._rt)
            self._count("writes")
            tombstone(self, uid).create({"at": _iso(at)}, **self._rt)
        except (AlreadyExists, Conflict):
            return
        except Exception as exc:
            raise _wrap(exc, "writing a tombstone") from exc
        self._count("writes")

    def is_erased(self, uid: str) -> bool:
        return is_erased(self, uid)

    def finish_erasure(self, uid: str) -> None:
        try:
            self._pending(uid).delete(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "closing an erasure") from exc
        self._count("deletes")

    def pending_erasures(self, limit: int) -> list[str]:
        """User ids whose erasure started and did not finish, at most ``limit``."""
        try:
            docs = list(self._record(self.db.collection("erasures_pending").limit(limit)).stream(**self._rt))
        except Exception as exc:
            raise _wrap(exc, "listing unfinished erasures") from exc
        self._count("reads", max(1, len(docs)))
        return [str((d.to_dict() or {}).get("uid", "")) for d in docs if (d.to_dict() or {}).get("uid")]

    def batch_runs(self) -> list[RunInfo]:
        """Every Batch API run: their records list uploaded files and the jobs they carry."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.db.collection("runs").where(filter=FieldFilter("params.via", "==", "batch-api"))
        try:
            docs = list(self._record(query).stream(**self._rt))
        except Exception as exc:
            raise _wrap(exc, "listing batch runs") from exc
        self._count("reads", max(1, len(docs)))
        return [RunInfo.from_dict(d.to_dict() or {}) for d in docs]

    def forget_queued(self, uid: str) -> int:
        """Queued messages live in Pub/Sub, not here: a late one is refused by the tombstone."""
        return 0

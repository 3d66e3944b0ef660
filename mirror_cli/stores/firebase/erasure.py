"""Erasure bookkeeping on Firestore: the pseudonym (``erased-`` + HMAC-SHA256 of the uid, the key
in ``store_meta/erasure``) and the tombstones (``erased_users/<pseudonym>``, kept after the
erasure: the store then refuses every write that would store the user again)."""

from __future__ import annotations

from datetime import datetime

from .client import FirebaseClient, _iso, _wrap
from .forget import is_erased, pseudonym, tombstone


class Erasure(FirebaseClient):
    def pseudonym(self, uid: str) -> str:
        return pseudonym(self, uid)

    def put_tombstone(self, uid: str, at: datetime) -> None:
        """Idempotent: the first erasure's time is kept."""
        from google.api_core.exceptions import AlreadyExists, Conflict

        try:
            tombstone(self, uid).create({"at": _iso(at)}, **self._rt)
        except (AlreadyExists, Conflict):
            return
        except Exception as exc:
            raise _wrap(exc, "writing a tombstone") from exc
        self._count("writes")

    def is_erased(self, uid: str) -> bool:
        return is_erased(self, uid)

    def forget_queued(self, uid: str) -> int:
        """Queued messages live in Pub/Sub, not here: a late one is refused by the tombstone."""
        return 0

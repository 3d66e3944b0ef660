"""Job claims: a lease per request key, so one request is in flight at a time across threads,
processes and overlapping runs. Each change is one write transaction (BEGIN IMMEDIATE)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..base import Claim, ClaimResult
from .db import LocalDb
from .forget import with_names_user
from .schema import iso


class Claims(LocalDb):
    def claim(self, claim: Claim, now: datetime, steal_from: str | None = None) -> ClaimResult:
        with self.transaction() as db:
            row = db.execute("SELECT body FROM claims WHERE key = ?", (claim.key,)).fetchone()
            previous = Claim.from_dict(json.loads(row[0])) if row else None
            held = previous is not None and not (
                previous.lease_until < now or previous.owner == claim.owner or previous.owner == steal_from
            )
            if not held:
                db.execute(
                    "INSERT OR REPLACE INTO claims(key, owner, lease_until, body) VALUES (?, ?, ?, ?)",
                    (claim.key, claim.owner, iso(claim.lease_until), json.dumps(claim.to_dict())),
                )
        if held:
            assert previous is not None
            self._count("reads")
            return ClaimResult(False, previous)
        self._count("writes")
        taken = previous if previous is not None and previous.owner != claim.owner else None
        return ClaimResult(True, claim, taken)

    def renew_claim(self, key: str, owner: str, lease_until: datetime, info: dict[str, Any] | None = None) -> bool:
        with self.transaction() as db:
            row = db.execute("SELECT body FROM claims WHERE key = ? AND owner = ?", (key, owner)).fetchone()
            if row is None:
                return False
            body = json.loads(row[0])
            body["lease_until"] = iso(lease_until)
            if info:
                body["info"] = {**body.get("info", {}), **info}
            cur = db.execute(
                "UPDATE claims SET lease_until = ?, body = ? WHERE key = ? AND owner = ?",
                (iso(lease_until), json.dumps(body), key, owner),
            )
        self._count("writes")
        return cur.rowcount == 1

    def get_claim(self, key: str) -> Claim | None:
        rows = self._q("SELECT body FROM claims WHERE key = ?", (key,))
        return Claim.from_dict(json.loads(rows[0][0])) if rows else None

    def release_claim(self, key: str, owner: str | None = None) -> None:
        if owner is None:
            self._q("DELETE FROM claims WHERE key = ?", (key,), op="writes")
        else:
            self._q("DELETE FROM claims WHERE key = ? AND owner = ?", (key, owner), op="writes")

    def forget_claims(self, uid: str) -> int:
        """Erasure: claims on the user's request keys ('<uid>/<key>') or naming them."""
        db = with_names_user(self._open())
        return db.execute(
            "DELETE FROM claims WHERE names_user(key, ?) OR names_user(owner, ?) OR names_user(body, ?)",
            (uid, uid, uid),
        ).rowcount

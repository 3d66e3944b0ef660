"""Budget reservations without hot documents.

- Per-user daily count: one document per user and day (``limits_users/{uid}.{day}``).
- System daily count and monthly budget: distributed counters, ``k`` shard documents each
  (``limits_system/{day}.{j}``, ``limits_budget/{month}.{j}``), the cap split into ``k`` slices
  so each shard has its own. A reservation increments one random shard of each and reads the
  new values from the write's own result (Firestore returns a transform's result: no read);
  a shard past its slice is undone and another tried. Every shard stays under its slice, so the
  sum never passes the cap, across any number of processes, without transactions.
- The reservation's shards are part of its id, so settling and releasing touch the same ones.

A slice is at least 4 generations or $1, so small caps use fewer shards (a cap of 3 is one
document). Near a cap a few units can stay unused in other shards' slices: never an overshoot.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from ..base import Caps, LimitReached, Reservation
from ..rates import RateTaken, gcra
from .client import MICRO, FirebaseClient, _iso, _wrap
from .forget import delete_all, field_is, id_prefix

SHARDS = 128
MIN_COUNT_SLICE = 4
MIN_BUDGET_SLICE = MICRO  # $1


def slots(cap_units: int, min_slice: int) -> int:
    """How many shards a cap is split over."""
    return max(1, min(SHARDS, cap_units // min_slice))


def slice_of(cap_units: int, k: int, j: int) -> int:
    """Shard j's part of a cap split over k shards (the parts add up to the cap exactly)."""
    return cap_units * (j + 1) // k - cap_units * j // k


class Limits(FirebaseClient):
    def _limit_docs(self, res: Reservation) -> tuple[Any, Any | None, Any | None]:
        _, jc, jb = _slots_of(res.id)
        user = self.db.collection("limits_users").document(f"{res.user_id}.{res.day}")
        system = self.db.collection("limits_system").document(f"{res.day}.{jc}") if jc >= 0 else None
        budget = self.db.collection("limits_budget").document(f"{res.month}.{jb}") if jb >= 0 else None
        return user, system, budget

    def _apply(self, res: Reservation, sign: int, micro: int) -> list[int]:
        """Add (sign=+1) or take back (-1) a reservation's units; the counters' new values."""
        from google.cloud.firestore import Increment

        user, system, budget = self._limit_docs(res)
        batch = self.db.batch()
        batch.set(user, {"n": Increment(sign), "day": res.day, "uid": res.user_id}, merge=True)
        if system is not None:
            batch.set(system, {"n": Increment(sign), "day": res.day}, merge=True)
        if budget is not None:
            batch.set(budget, {"micro": Increment(sign * micro), "month": res.month}, merge=True)
        results = batch.commit(**self._rt)
        self._count("writes", len(results))
        return [int(r.transform_results[0].integer_value) for r in results]

    def _used(self, collection: str, key_field: str, key: str, value: str) -> dict[int, int]:
        from google.cloud.firestore import FieldFilter

        query = self.db.collection(collection).where(filter=FieldFilter(key_field, "==", key))
        docs = list(self._record(query).stream(**self._rt))
        self._count("reads", max(1, len(docs)))
        return {int(d.id.rsplit(".", 1)[1]): int((d.to_dict() or {}).get(value, 0)) for d in docs}

    def reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation:
        day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        micro = round(amount * MICRO)
        count_cap = caps.system_daily
        budget_cap = round(caps.monthly_budget_usd * MICRO) if caps.monthly_budget_usd is not None else None
        kc = slots(count_cap, MIN_COUNT_SLICE) if count_cap is not None else 0
        kb = slots(budget_cap, MIN_BUDGET_SLICE) if budget_cap is not None else 0
        jc = random.randrange(kc) if kc else -1
        jb = random.randrange(kb) if kb else -1
        try:
            for _ in range(8):
                res = Reservation(f"{uuid.uuid4().hex}.{jc}.{jb}", uid, amount, day, month)
                values = self._apply(res, +1, micro)
                n_user, rest = values[0], values[1:]
                n_system = rest.pop(0) if jc >= 0 else 0
                spent = rest.pop(0) if jb >= 0 else 0
                user_over = caps.per_user_daily is not None and n_user > caps.per_user_daily
                system_over = count_cap is not None and n_system > slice_of(count_cap, kc, jc)
                budget_over = budget_cap is not None and spent > slice_of(budget_cap, kb, jb)
                if not (user_over or system_over or budget_over):
                    self._record_reservation(res, request_key, micro, now)
                    return res
                self._apply(res, -1, micro)
                if user_over:
                    raise LimitReached("per_user_daily", f"user {uid} reached {caps.per_user_daily} generations today")
                # This shard's slice is used up: look at all of them once, pick one with room.
                if system_over and count_cap is not None:
                    used = self._used("limits_system", "day", day, "n")
                    free = [j for j in range(kc) if used.get(j, 0) + 1 <= slice_of(count_cap, kc, j)]
                    if not free:
                        raise LimitReached("system_daily", f"the system reached {count_cap} generations today")
                    jc = random.choice(free)
                if budget_over and budget_cap is not None:
                    used = self._used("limits_budget", "month", month, "micro")
                    free = [j for j in range(kb) if used.get(j, 0) + micro <= slice_of(budget_cap, kb, j)]
                    if not free:
                        raise LimitReached(
                            "monthly_budget",
                            f"the monthly budget of ${caps.monthly_budget_usd:.2f} would be exceeded "
                            f"(${sum(used.values()) / MICRO:.4f} committed, this job needs ${amount:.4f})",
                        )
                    jb = random.choice(free)
        except LimitReached:
            raise
        except Exception as exc:
            raise _wrap(exc, "reserving budget") from exc
        raise LimitReached("system_daily", "the caps are contended: no shard had room after 8 attempts")

    def _record_reservation(self, res: Reservation, request_key: str, micro: int, now: datetime) -> None:
        self.db.collection("reservations").document(res.id).set(
            {
                "uid": res.user_id,
                "request_key": request_key,
                "amount_micro_usd": micro,
                "day": res.day,
                "month": res.month,
                "state": "held",
                "created_at": _iso(now),
            },
            **self._rt,
        )
        self._count("writes")

    def _still_held(self, reservation: Reservation) -> bool:
        """One read (a crashed owner's reservation only): is it still held?"""
        with self._rpc("reading a reservation"):
            snap = self.db.collection("reservations").document(reservation.id).get(**self._rt)
        self._count("reads")
        return bool(snap.exists and (snap.to_dict() or {}).get("state") == "held")

    def settle(self, reservation: Reservation, actual: float, *, only_held: bool = False) -> None:
        from google.cloud.firestore import Increment

        if only_held and not self._still_held(reservation):
            return
        _, _, budget = self._limit_docs(reservation)
        delta = round(actual * MICRO) - round(reservation.amount * MICRO)
        with self._rpc("settling a reservation"):
            batch = self.db.batch()
            if budget is not None and delta:
                batch.set(budget, {"micro": Increment(delta)}, merge=True)
            batch.set(
                self.db.collection("reservations").document(reservation.id),
                {"state": "settled", "actual_micro_usd": round(actual * MICRO), "settled_at": _iso(datetime.now(UTC))},
                merge=True,
            )
            self._count("writes", len(batch.commit(**self._rt)))

    def release(self, reservation: Reservation, *, only_held: bool = False) -> None:
        if only_held and not self._still_held(reservation):
            return
        with self._rpc("releasing a reservation", "writes"):
            self._apply(reservation, -1, round(reservation.amount * MICRO))
            self.db.collection("reservations").document(reservation.id).set(
                {"state": "released"}, merge=True, **self._rt
            )

    def forget_reservations(self, uid: str) -> int:
        """Erasure: the user's reservations and daily counters (spend stays in the ledger)."""
        n = delete_all(self, field_is(self.db.collection("reservations"), "uid", uid), "reservations")
        return n + delete_all(self, id_prefix(self.db.collection("limits_users"), f"{uid}."), "daily limits")

    def take_rate(self, bucket: str, interval_s: float, burst: int, max_wait_s: float, now: float) -> RateTaken:
        """The bucket's TAT in ``rates/{bucket}``: read, then written only if unchanged since (a
        precondition on its update time, or create() for a new bucket); a lost race reads again."""
        from google.api_core.exceptions import AlreadyExists, Conflict, FailedPrecondition, NotFound
        from google.cloud.firestore_v1 import LastUpdateOption

        ref = self.db.collection("rates").document(bucket)
        try:
            for _ in range(20):
                snap = ref.get(**self._rt)
                self._count("reads")
                answer, tat = gcra(
                    float((snap.to_dict() or {})["tat"]) if snap.exists else None, now, interval_s, burst, max_wait_s
                )
                if not answer.taken:
                    return answer
                body = {"tat": tat, "expires_at": datetime.fromtimestamp(tat + 3600, UTC)}  # a TTL policy field
                try:
                    if snap.exists:
                        ref.update(body, option=LastUpdateOption(snap.update_time), **self._rt)
                    else:
                        ref.create(body, **self._rt)
                    self._count("writes")
                    return answer
                except (AlreadyExists, Conflict, FailedPrecondition, NotFound):
                    continue  # another process took a start meanwhile
        except Exception as exc:
            raise _wrap(exc, "taking a rate") from exc
        return RateTaken(False, interval_s)  # too contended now: try again after one interval


def _slots_of(reservation_id: str) -> tuple[str, int, int]:
    """A reservation id is ``hex.jc.jb``: the system-count and budget shards it holds."""
    parts = reservation_id.split(".")
    if len(parts) != 3:
        return reservation_id, -1, -1  # a reservation from before the shards: no counters to touch
    return parts[0], int(parts[1]), int(parts[2])

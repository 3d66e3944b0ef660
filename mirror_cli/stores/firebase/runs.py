"""Runs and their jobs' states."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..base import (
    Claim,
    ClaimResult,
    JobState,
    RunInfo,
)
from .client import FirebaseClient, _iso, _wrap
from .forget import delete_all, field_is, id_prefix


class Runs(FirebaseClient):
    # --------------------------------------------------------------------------------- runs
    def create_run(self, run: RunInfo) -> None:
        with self._rpc("creating a run", "writes"):
            self.db.collection("runs").document(run.id).create(run.to_dict(), **self._rt)

    def update_run(self, run: RunInfo) -> None:
        with self._rpc("updating a run", "writes"):
            self.db.collection("runs").document(run.id).set(run.to_dict(), **self._rt)

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._rpc("reading a run", "reads"):
            snap = self.db.collection("runs").document(run_id.replace("/", "_")).get(**self._rt)
        return RunInfo.from_dict(snap.to_dict() or {}) if snap.exists else None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        from google.cloud import firestore

        with self._rpc("listing runs"):
            docs = list(
                self._record(
                    self.db.collection("runs").order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
                ).stream(**self._rt)
            )
        self._count("reads", max(1, len(docs)))
        return [RunInfo.from_dict(d.to_dict() or {}) for d in docs]

    def put_job_state(self, state: JobState) -> None:
        body = state.to_dict()
        with self._rpc("recording a job's state", "writes"):
            self.db.collection("runs").document(state.run_id).collection("jobs").document(state.job_id).set(
                body, **self._rt
            )

    def job_states(self, run_id: str) -> list[JobState]:
        jobs = self.db.collection("runs").document(run_id).collection("jobs")
        return [
            JobState.from_dict(run_id, snap.to_dict() or {})
            for snap in self._keyset(jobs, "job_id", "reading a run's jobs")
        ]

    # ------------------------------------------------------------------------------- claims
    def _claim_doc(self, key: str) -> Any:
        return self.db.collection("claims").document(key.replace("/", "__"))

    def claim(self, claim: Claim, now: datetime, steal_from: str | None = None) -> ClaimResult:
        """``create()`` the claim document: it fails if another process holds one. An expired
        (or a dead owner's) claim is replaced only if it is unchanged since it was read (a
        precondition on its update time), so two processes never both take it over."""
        from google.api_core.exceptions import AlreadyExists, Conflict, FailedPrecondition, NotFound

        ref = self._claim_doc(claim.key)
        try:
            written = ref.create(claim.to_dict(), **self._rt)
            self._count("writes")
            self._wrote_claim(claim.key, claim.owner, written.update_time)
            return ClaimResult(True, claim)
        except (AlreadyExists, Conflict):
            pass
        except Exception as exc:
            raise _wrap(exc, "claiming a job") from exc
        try:
            snap = ref.get(**self._rt)
            self._count("reads")
            if not snap.exists:  # released meanwhile: try once more from the start
                written = ref.create(claim.to_dict(), **self._rt)
                self._count("writes")
                self._wrote_claim(claim.key, claim.owner, written.update_time)
                return ClaimResult(True, claim)
            previous = Claim.from_dict(snap.to_dict() or {})
            if not (previous.lease_until < now or previous.owner == claim.owner or previous.owner == steal_from):
                return ClaimResult(False, previous)
            from google.cloud.firestore_v1 import LastUpdateOption

            written = ref.update(claim.to_dict(), option=LastUpdateOption(snap.update_time), **self._rt)
            self._count("writes")
            self._wrote_claim(claim.key, claim.owner, written.update_time)
        except (AlreadyExists, Conflict, FailedPrecondition, NotFound):
            current = self.get_claim(claim.key)
            return ClaimResult(False, current)
        except Exception as exc:
            raise _wrap(exc, "claiming a job") from exc
        taken = previous if previous.owner != claim.owner else None
        return ClaimResult(True, claim, taken)

    def _wrote_claim(self, key: str, owner: str, update_time: Any) -> None:
        """Remember when this client last wrote a claim it holds: renewing it is then a write on
        that precondition (nobody changed it since), without reading it first."""
        with self._ops_lock:
            self.__dict__.setdefault("_claim_writes", {})[key] = (owner, update_time)

    def _claim_written(self, key: str, owner: str) -> Any:
        with self._ops_lock:
            known = self.__dict__.get("_claim_writes", {}).get(key)
            if known is None or known[1] is None or known[0] != owner:
                return None
            return known[1]

    def _forget_claim(self, key: str) -> None:
        with self._ops_lock:
            self.__dict__.get("_claim_writes", {}).pop(key, None)

    def renew_claim(self, key: str, owner: str, lease_until: datetime, info: dict[str, Any] | None = None) -> bool:
        from google.api_core.exceptions import FailedPrecondition, NotFound
        from google.cloud import firestore
        from google.cloud.firestore_v1 import LastUpdateOption

        ref = self._claim_doc(key)
        update: dict[str, Any] = {"lease_until": _iso(lease_until)}
        for k, v in (info or {}).items():
            update[f"info.{k}"] = v
        last = self._claim_written(key, owner)
        if last is not None:  # unchanged since this client wrote it: still ours, no read needed
            try:
                written = ref.update(update, option=LastUpdateOption(last), **self._rt)
                self._count("writes")
                self._wrote_claim(key, owner, written.update_time)
                return True
            except (FailedPrecondition, NotFound):
                self._forget_claim(key)  # changed by someone else (or gone): read it below
            except Exception as exc:
                raise _wrap(exc, "renewing a job claim") from exc
        transaction = self.db.transaction()

        @firestore.transactional
        def renew(tx: Any) -> bool:
            snap = ref.get(transaction=tx)
            if not snap.exists or (snap.to_dict() or {}).get("owner") != owner:
                return False
            tx.update(ref, update)
            return True

        with self._rpc("renewing a job claim", "reads"):
            ok: bool = renew(transaction)
        self._count("writes")
        return ok

    def get_claim(self, key: str) -> Claim | None:
        with self._rpc("reading a job claim", "reads"):
            snap = self._claim_doc(key).get(**self._rt)
        return Claim.from_dict(snap.to_dict() or {}) if snap.exists else None

    def release_claim(self, key: str, owner: str | None = None) -> None:
        from google.cloud import firestore

        self._forget_claim(key)
        ref = self._claim_doc(key)
        if owner is None:
            with self._rpc("releasing a job claim", "deletes"):
                ref.delete(**self._rt)
            return
        transaction = self.db.transaction()

        @firestore.transactional
        def release(tx: Any) -> None:
            snap = ref.get(transaction=tx)
            if snap.exists and (snap.to_dict() or {}).get("owner") == owner:
                tx.delete(ref)

        with self._rpc("releasing a job claim", "deletes"):
            release(transaction)

    def forget_claims(self, uid: str) -> int:
        """Erasure: claims on the user's request keys (ids ``<uid>__<request key>``)."""
        return delete_all(self, id_prefix(self.db.collection("claims"), f"{uid}__"), "claims")

    def forget_run_jobs(self, uid: str) -> int:
        """Erasure: the run-job documents of the user's jobs, across runs."""
        return delete_all(self, field_is(self.db.collection_group("jobs"), "user_id", uid), "run jobs")

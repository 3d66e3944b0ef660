"""Runs and their jobs' states."""

from __future__ import annotations

from ..base import (
    JobState,
    RunInfo,
)
from .client import FirebaseClient, _wrap


class Runs(FirebaseClient):
    # --------------------------------------------------------------------------------- runs
    def create_run(self, run: RunInfo) -> None:
        try:
            self.db.collection("runs").document(run.id).create(run.to_dict(), **self._rt)
        except Exception as exc:
            raise _wrap(exc, "creating a run") from exc
        self._count("writes")

    def update_run(self, run: RunInfo) -> None:
        try:
            self.db.collection("runs").document(run.id).set(run.to_dict(), **self._rt)
        except Exception as exc:
            raise _wrap(exc, "updating a run") from exc
        self._count("writes")

    def get_run(self, run_id: str) -> RunInfo | None:
        try:
            snap = self.db.collection("runs").document(run_id.replace("/", "_")).get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "reading a run") from exc
        self._count("reads")
        return RunInfo.from_dict(snap.to_dict() or {}) if snap.exists else None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        from google.cloud import firestore

        try:
            docs = list(
                self.db.collection("runs")
                .order_by("created_at", direction=firestore.Query.DESCENDING)
                .limit(limit)
                .stream(**self._rt)
            )
        except Exception as exc:
            raise _wrap(exc, "listing runs") from exc
        self._count("reads", max(1, len(docs)))
        return [RunInfo.from_dict(d.to_dict() or {}) for d in docs]

    def put_job_state(self, state: JobState) -> None:
        body = state.to_dict()
        try:
            self.db.collection("runs").document(state.run_id).collection("jobs").document(state.job_id).set(
                body, **self._rt
            )
        except Exception as exc:
            raise _wrap(exc, "recording a job's state") from exc
        self._count("writes")

    def job_states(self, run_id: str) -> list[JobState]:
        jobs = self.db.collection("runs").document(run_id).collection("jobs")
        return [
            JobState.from_dict(run_id, snap.to_dict() or {})
            for snap in self._keyset(jobs, "job_id", "reading a run's jobs")
        ]

"""The app's slow requests: one document per job in ``app_jobs`` (any instance answers its poll)."""

from __future__ import annotations

from ..base import AppJob
from .client import FirebaseClient
from .forget import delete_all, field_is


class AppJobs(FirebaseClient):
    def put_app_job(self, job: AppJob) -> None:
        with self._rpc("writing a job", "writes"):
            self.db.collection("app_jobs").document(job.id).set(job.to_dict(), **self._rt)

    def get_app_job(self, job_id: str) -> AppJob | None:
        with self._rpc("reading a job", "reads"):
            snap = self.db.collection("app_jobs").document(job_id).get(**self._rt)
        return AppJob.from_dict(snap.to_dict() or {}) if snap.exists else None

    def forget_app_jobs(self, uid: str) -> int:
        """Erasure: the app's slow requests for the user."""
        return delete_all(self, field_is(self.db.collection("app_jobs"), "owner", uid), "app jobs")

"""The app's slow requests: one row per job, its state as JSON (any process answers its poll)."""

from __future__ import annotations

import json

from ..base import AppJob
from .db import LocalDb
from .forget import with_names_user


class AppJobs(LocalDb):
    def put_app_job(self, job: AppJob) -> None:
        self._q(
            "INSERT INTO app_jobs(id, body) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
            (job.id, json.dumps(job.to_dict())),
            op="writes",
        )

    def get_app_job(self, job_id: str) -> AppJob | None:
        rows = self._q("SELECT body FROM app_jobs WHERE id = ?", (job_id,))
        return AppJob.from_dict(json.loads(rows[0][0])) if rows else None

    def forget_app_jobs(self, uid: str) -> int:
        """Erasure: the app's slow requests for the user."""
        db = with_names_user(self._open())
        return db.execute("DELETE FROM app_jobs WHERE names_user(id, ?) OR names_user(body, ?)", (uid, uid)).rowcount

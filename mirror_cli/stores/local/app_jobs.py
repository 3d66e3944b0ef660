"""The app's slow requests: one row per job, its state as JSON (any process answers its poll)."""

from __future__ import annotations

import json

from ..base import AppJob
from .db import LocalDb


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

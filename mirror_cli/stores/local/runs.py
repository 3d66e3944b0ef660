"""Runs and the state of each of their jobs."""

from __future__ import annotations

import json

from ..base import JobState, RunInfo
from .db import LocalDb
from .forget import with_names_user
from .schema import iso


class Runs(LocalDb):
    def create_run(self, run: RunInfo) -> None:
        self._q(
            "INSERT INTO runs(id, created_at, info) VALUES (?, ?, ?)",
            (run.id, iso(run.created_at), json.dumps(run.to_dict())),
            op="writes",
        )

    def update_run(self, run: RunInfo) -> None:
        self._q("UPDATE runs SET info = ? WHERE id = ?", (json.dumps(run.to_dict()), run.id), op="writes")

    def get_run(self, run_id: str) -> RunInfo | None:
        rows = self._q("SELECT info FROM runs WHERE id = ?", (run_id,))
        return RunInfo.from_dict(json.loads(rows[0][0])) if rows else None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        rows = self._q("SELECT info FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [RunInfo.from_dict(json.loads(r[0])) for r in rows]

    def put_job_state(self, state: JobState) -> None:
        self._q(
            "INSERT OR REPLACE INTO run_jobs(run_id, job_id, state, info) VALUES (?, ?, ?, ?)",
            (state.run_id, state.job_id, state.state, json.dumps(state.to_dict())),
            op="writes",
        )

    def job_states(self, run_id: str) -> list[JobState]:
        rows = self._q("SELECT info FROM run_jobs WHERE run_id = ? ORDER BY job_id", (run_id,))
        return [JobState.from_dict(run_id, json.loads(r[0])) for r in rows]

    def forget_run_jobs(self, uid: str) -> int:
        """Erasure: the run-job rows of the user's jobs (a run's own summary names no user)."""
        db = with_names_user(self._open())
        return db.execute(
            "DELETE FROM run_jobs WHERE names_user(job_id, ?) OR names_user(info, ?)", (uid, uid)
        ).rowcount

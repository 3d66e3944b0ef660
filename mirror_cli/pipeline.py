"""Kept for imports: the pipeline now lives in ``mirror_cli.jobs`` (one module per step)."""

from .jobs import JobSpec, Outcome, Pipeline, RunReport, Status, claim_key, owner_dead, paid_event, render_asset

__all__ = [
    "JobSpec",
    "Outcome",
    "Pipeline",
    "RunReport",
    "Status",
    "claim_key",
    "owner_dead",
    "paid_event",
    "render_asset",
]

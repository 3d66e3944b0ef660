"""A job's life, one module per step: ``life`` states the steps in order and calls ``claims``,
``money`` (where money is decided), ``buy``, ``finish``, ``cache`` and ``degrade``; ``scheduler``
runs many jobs. Shared types live in ``types`` and ``context``, below every step."""

from .claims import claim_key, owner_dead
from .money import paid_event
from .scheduler import Pipeline, render_asset
from .types import JobSpec, Outcome, RunReport, Status

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

"""Kept for imports: the pipeline now lives in ``mirror_cli.jobs`` (one module per step)."""

from . import jobs as _jobs
from .jobs import *  # noqa: F403

__all__ = _jobs.__all__

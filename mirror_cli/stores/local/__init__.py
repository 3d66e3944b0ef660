"""The embedded default store: one SQLite file (numbered migrations, ``schema``) plus an image
folder. One module per concern of the Store protocol; ``db`` holds what they share (the folder,
the file, one connection per thread, write transactions, operation counts)."""

from __future__ import annotations

from .app_jobs import AppJobs
from .avatars import Avatars
from .cache import Cache
from .claims import Claims
from .erasure import Erasure
from .ledger import Ledger
from .limits import STALE_RESERVATION, Limits
from .profiles import Profiles
from .reports import Reports
from .reviews import Reviews
from .runs import Runs
from .schema import MIGRATIONS, TIMING_COLUMNS
from .selections import Selections


class LocalStore(
    Erasure, AppJobs, Profiles, Avatars, Cache, Ledger, Limits, Runs, Claims, Reviews, Selections, Reports
):
    """Every concern, on one SQLite file."""


__all__ = ["MIGRATIONS", "STALE_RESERVATION", "TIMING_COLUMNS", "LocalStore"]

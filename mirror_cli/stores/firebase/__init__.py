"""The production store: Firestore for users, records, cache, ledger, limits and runs; Cloud
Storage for images, served by V4 signed URLs, never made public. One module per concern of the
Store protocol; ``client`` holds what they share (clients, credentials, deadlines, op counts)."""

from __future__ import annotations

from .app_jobs import AppJobs
from .avatars import Avatars
from .cache import Cache
from .erasure import Erasure
from .ledger import Ledger
from .limits import Limits
from .profiles import Profiles
from .reports import Reports
from .reviews import Reviews
from .runs import Runs
from .selections import Selections


class FirebaseStore(Erasure, AppJobs, Profiles, Avatars, Cache, Ledger, Limits, Runs, Reviews, Selections, Reports):
    """Every concern, on one Firebase app."""


__all__ = ["FirebaseStore"]

"""Erasing a user on request (GDPR Art. 17): the one function the CLI (`mirror users delete`) and
the API (`DELETE /api/v1/users/{id}`) call.

Order: a tombstone first (keyed by the user's pseudonym, so it names nobody), then one
deletion per concern of the store (the OpenAI files still held for the user first), the spool
files, and the user's folder of local files. Each step is idempotent, so a crash half-way is
finished by the next call or by the nightly run (``finish_pending_erasures``), and a second call
is a no-op success. The tombstone stays: the store refuses any later write that would store the
user again (a late job, batch result or request). Spend stays too: the user's ledger events are
re-keyed to the pseudonym, so usage totals and budgets do not change.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MirrorError, StoreError
from .held_files import forget_held_files
from .models import validate_user_id
from .stores.base import ErasureStore

if TYPE_CHECKING:
    from .wiring import Wiring

log = logging.getLogger("mirror.erasure")
NIGHTLY_ERASURES = 20  # unfinished erasures one nightly run completes before planning

# The store's concerns, in the order they are forgotten: what could start new work for the
# user first (queued and in-flight jobs), the profile last.
STEPS = (
    "forget_app_jobs",
    "forget_queued",
    "forget_claims",
    "forget_run_jobs",
    "forget_cache",
    "forget_selections",
    "forget_reviews",
    "forget_reservations",
    "forget_reports",
    "forget_avatars",
    "forget_profile",
)


def erase_user(w: Wiring, uid: str) -> dict[str, Any]:
    """Remove every trace of ``uid``; returns what each step removed."""
    validate_user_id(uid)
    store = _erasure_store(w)
    already = store.is_erased(uid)
    store.put_tombstone(uid, w.now())
    alias = store.pseudonym(uid)
    removed: dict[str, int] = {}
    # first: the runs' records still name the files the user's jobs uploaded
    removed["openai_files"] = forget_held_files(w, uid)
    for step in STEPS:
        removed[step.removeprefix("forget_")] = getattr(store, step)(uid)
    removed["ledger_events_pseudonymised"] = store.pseudonymise_ledger(uid, alias)
    removed["spool_files"] = _remove_folder(w.spool.root / uid)
    store.finish_erasure(uid)  # last: until here the nightly run would finish it
    return {"user": uid, "pseudonym": alias, "already_erased": already, "removed": removed}


def finish_pending_erasures(w: Wiring, limit: int = NIGHTLY_ERASURES) -> dict[str, Any]:
    """The nightly run's first step: finish at most ``limit`` erasures a crash left half-done.
    Named by pseudonym (a run's summary never names an erased user); one that fails again is
    counted and left for the next night, never stopping the run."""
    store = w.store
    if not isinstance(store, ErasureStore):
        return {"finished": [], "failed": 0}
    finished: list[str] = []
    failed = 0
    for uid in store.pending_erasures(limit):
        try:
            finished.append(str(erase_user(w, uid)["pseudonym"]))
        except (MirrorError, OSError) as err:
            failed += 1
            why = err.message if isinstance(err, MirrorError) else str(err)
            log.warning("an unfinished erasure failed again (%s): left for the next run", why)
    return {"finished": finished, "failed": failed}


def _erasure_store(w: Wiring) -> ErasureStore:
    store = w.store
    if not isinstance(store, ErasureStore):
        raise StoreError(
            f"The {store.name} store cannot erase users yet.",
            "Erase on a store that supports it (local or firebase), or ask the maintainers.",
        )
    return store


def _remove_folder(folder: Path) -> int:
    if not folder.exists():
        return 0
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder)
    return n

"""Erasing a user with many avatars on Firestore (the official emulator): time, batches, memory.

    python bench/erasure_scale.py [--avatars 10000] [--small 1000] [--objects 200]

A user is seeded with --avatars avatar documents (bulk batches: seeding is not measured), a
cache entry and a ledger line per 100 avatars, and --objects Storage objects; `mirror users
delete` (core.erase_user) then erases them. Printed: wall time, documents deleted, pages read
(one Firestore batch each), the tracemalloc peak of the erasure and the process's RSS around it.
Memory is bounded when the peak does not grow with the avatars: the same erasure of a --small
user is measured in the same run. The floor is an independent deletion of the same number of
avatar documents with the firebase-admin client alone (google-cloud-firestore's
``recursive_delete``, a BulkWriter), on another user seeded the same way in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import first_avatar

from mirror_cli.core import Mirror
from mirror_cli.models import LedgerEvent, Persona
from mirror_cli.settings import load_settings
from mirror_cli.stores.base import CacheEntry
from mirror_cli.stores.firebase.client import FirebaseClient

BATCH = 500


def rss_mb() -> float:
    """The process's resident set now (Linux /proc), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def seed(core: Mirror, uid: str, avatars: int, objects: int) -> None:
    """A profile, ``avatars`` avatar documents, a cache entry and a ledger line per 100 of them,
    and ``objects`` Storage objects under the user's folder."""
    store: Any = core.store
    core.import_users([Persona(id=uid, name="Many")])
    col = store._avatars(uid)

    def commit(start: int) -> None:
        batch = store.db.batch()
        for i in range(start, min(start + BATCH, avatars)):
            record = first_avatar(uid, i).model_copy(update={"id": f"a{i:06d}", "target": f"t{i % 7}"})
            body = {**record.model_dump(mode="json"), "created_at": "2026-01-01T00:00:00"}
            batch.set(col.document(record.id), body)
        batch.commit(timeout=300)

    with ThreadPoolExecutor(4) as pool:  # batches in parallel: seeding is not what is measured
        list(pool.map(commit, range(0, avatars, BATCH)))
    for i in range(0, avatars, 100):
        store.cache_put(CacheEntry(uid, f"{i:064d}", f"a{i:06d}", core.now()))
        store.record_event(LedgerEvent(ts=core.now(), user_id=uid, kind="generated", cost_usd=0.01))
    for i in range(objects):
        store.bucket.blob(f"avatars/{uid}/img-{i:05d}.webp").upload_from_string(b"x" * 64)


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float, float, float]:
    """(result, seconds, tracemalloc peak MB, RSS before MB, RSS after MB)."""
    before = rss_mb()
    tracemalloc.start()
    t = time.perf_counter()
    try:
        out = fn()
        seconds = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, seconds, peak / 1e6, before, rss_mb()


def erase(core: Mirror, uid: str) -> dict[str, Any]:
    FirebaseClient.query_log = []
    try:
        out, seconds, peak, before, after = measured(lambda: core.erase_user(uid))
        pages = len(FirebaseClient.query_log)
    finally:
        FirebaseClient.query_log = None
    removed = out["removed"]
    return {
        "seconds": seconds,
        "avatars": removed["avatars"],
        "documents": sum(v for k, v in removed.items() if k not in ("ledger_events_pseudonymised", "spool_files")),
        "pages": pages,
        "peak_mb": peak,
        "rss": (before, after),
    }


def floor(core: Mirror, uid: str) -> dict[str, Any]:
    """The same avatar documents deleted with the Firestore client alone (its BulkWriter)."""
    store: Any = core.store
    col = store._avatars(uid)
    n, seconds, peak, before, after = measured(lambda: store.db.recursive_delete(col, chunk_size=BATCH))
    return {"seconds": seconds, "avatars": n, "peak_mb": peak, "rss": (before, after)}


def show(label: str, row: dict[str, Any]) -> None:
    extra = f", {row['documents']} documents in {row['pages']} pages (<= {BATCH} per batch)" if "pages" in row else ""
    print(
        f"{label:<34} {row['avatars']:>6} avatars in {row['seconds']:6.2f} s "
        f"({row['avatars'] / max(row['seconds'], 1e-9):6.0f}/s){extra}; "
        f"tracemalloc peak {row['peak_mb']:.1f} MB, RSS {row['rss'][0]:.0f} -> {row['rss'][1]:.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--avatars", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--objects", type=int, default=200)
    args = ap.parse_args()
    import emulators

    emus = emulators.start()
    work = Path(tempfile.mkdtemp(prefix="mirror-erase-"))
    try:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emus.firestore.host
        os.environ["STORAGE_EMULATOR_HOST"] = emus.storage_url
        project, bucket = emus.new_namespace()
        os.environ["MIRROR_FIREBASE_PROJECT"] = project
        os.environ["MIRROR_FIREBASE_BUCKET"] = bucket
        core = Mirror(load_settings({"store": "firebase", "data_dir": work / f"d-{uuid.uuid4().hex[:6]}"}))
        t = time.perf_counter()
        for uid, n in (("small", args.small), ("big", args.avatars), ("floor", args.avatars)):
            seed(core, uid, n, args.objects if uid != "floor" else 0)
        print(f"seeded {args.small + 2 * args.avatars} avatar documents in {time.perf_counter() - t:.1f} s")
        small, big, base = erase(core, "small"), erase(core, "big"), floor(core, "floor")
        show("erase_user, small user", small)
        show("erase_user, big user", big)
        show("floor: recursive_delete (client)", base)
        left = list(core.store._avatars("big").limit(1).stream())  # type: ignore[attr-defined]
        print(
            f"erase_user / floor time: {big['seconds'] / max(base['seconds'], 1e-9):.2f}x "
            f"(erase_user also deletes {args.objects} Storage objects one by one, the cache, ledger re-keying); "
            f"peak memory big / small: {big['peak_mb'] / max(small['peak_mb'], 1e-9):.2f}x; "
            f"avatar documents left: {len(left)}"
        )
        core.close()
    finally:
        emus.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"(peak RSS of this bench process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB)")


if __name__ == "__main__":
    main()

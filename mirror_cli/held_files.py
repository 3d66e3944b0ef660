"""Files OpenAI still holds for a user, and the Batch API runs' records that name them.

A Batch API run (mirror_cli/batch.py) uploads each edit's reference images (the person's photo,
their earlier avatars) as files and records them in ``run.params["uploads"]`` with the users they
were uploaded for (and whether it was a photo). They are deleted once the run no longer needs
them; until then they are *held*. Erasure deletes every file held for the user and takes the
user's jobs out of the runs' records; withdrawing photo consent deletes the photo uploads only.
An upload shared with another user (the same bytes) is kept for them and stops naming the user.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .stores.base import RunInfo

if TYPE_CHECKING:
    from .wiring import Wiring


def _job_of(job_id: str, uid: str) -> bool:
    """Job ids are ``<user>.<target>`` (custom ids add ``#<attempt>``)."""
    return job_id.partition(".")[0] == uid


def scrub_run(run: RunInfo, uid: str, *, photo_only: bool) -> tuple[list[str], bool]:
    """Take ``uid`` out of ``run``'s record: (file ids to delete, whether the record changed)."""
    files: list[str] = []
    changed = False
    uploads: dict[str, Any] = run.params.get("uploads") or {}
    for digest, entry in list(uploads.items()):
        users = list(entry.get("users") or [])
        if uid not in users or (photo_only and not entry.get("photo")):
            continue
        changed = True
        if users == [uid]:
            files.append(str(entry["id"]))
            del uploads[digest]
        else:
            entry["users"] = [u for u in users if u != uid]
    if photo_only:
        return files, changed
    jobs: dict[str, Any] = run.params.get("jobs") or {}
    for cid, meta in list(jobs.items()):
        if meta.get("user") == uid or _job_of(cid, uid):
            del jobs[cid]
            changed = True
    for name in ("waiting", "failed"):
        ids = run.params.get(name) or []
        kept = [j for j in ids if not _job_of(str(j), uid)]
        if len(kept) != len(ids):
            run.params[name], changed = kept, True
    for batch in run.params.get("batches") or []:
        ids = batch.get("custom_ids") or []
        kept = [c for c in ids if not _job_of(str(c), uid)]
        if len(kept) != len(ids):
            batch["custom_ids"], changed = kept, True
    return files, changed


def forget_held_files(w: Wiring, uid: str, *, photo_only: bool = False) -> int:
    """Delete the OpenAI files held for ``uid`` (only their photo's with ``photo_only``) and take
    them (and, for an erasure, the user's jobs) out of the runs' records; the number of files.
    Each run is saved once its files are gone, so a crash half-way repeats only deletions."""
    store = w.store
    batch_runs = getattr(store, "batch_runs", None)
    if batch_runs is None:
        return 0
    n = 0
    for run in batch_runs():
        files, changed = scrub_run(run, uid, photo_only=photo_only)
        if files:
            n += delete_openai_files(w, files)
        if changed:
            store.update_run(run)
    return n


def delete_openai_files(w: Wiring, file_ids: list[str]) -> int:
    """Delete ``file_ids`` with the openai-batch provider (its own client, closed after); a file
    already gone counts as deleted. Runs in the caller's thread (never inside an event loop)."""
    from .providers.base import ProviderContext, get_provider
    from .providers.openai_batch import OpenAIBatchProvider

    async def go() -> int:
        provider = get_provider("openai-batch", ProviderContext(w.settings, w.configs, {}))
        if not isinstance(provider, OpenAIBatchProvider):  # a plug-in registered under the name
            raise ConfigError(
                "The openai-batch provider is not OpenAI's: the files it uploaded cannot be deleted.",
                "Uninstall the plug-in that replaces openai-batch, then erase again.",
            )
        try:
            for file_id in file_ids:
                await provider.delete_file(file_id)
        finally:
            await provider.aclose()
        return len(file_ids)

    return asyncio.run(go())

"""The spool: every paid image lands here before anything else touches it, and leaves only after it
is stored and in the ledger. A later run ingests what it finds instead of paying again.

One entry is one file, ``<user>/<request key>.spool``: a JSON header line, then the image bytes.
It is written to a temporary name, fsynced and renamed, so an image and its metadata become
visible together or not at all. An entry may also carry no image: the *gate-retry marker* left
when a paid image failed a hard quality check and a second request is due, so that resuming
after a crash sends the retry, never the first request again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StoreError
from .models import ImageResult, TokenUsage

SUFFIX = ".spool"
DAMAGED = ".damaged-"  # <key>.spool.damaged-<nonce>: an unreadable entry, set aside for a person
log = logging.getLogger("mirror.spool")
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@dataclass
class Spooled:
    result: ImageResult | None  # None for a gate-retry marker
    meta: dict[str, Any]

    @property
    def retry_due(self) -> bool:
        """The first image was paid and kept as rejected; the reinforced retry is what remains."""
        return self.result is None and self.meta.get("state") == "gate_retry"


def disk_error(exc: OSError, what: str) -> StoreError:
    if exc.errno in DISK_FULL:
        return StoreError(
            f"The disk is full: cannot write {what}.",
            "Free some space (or point --data-dir at a larger disk), then run the same command again.",
        )
    return StoreError(f"Cannot write {what}: {exc.strerror or exc}.", "Check the folder's permissions and free space.")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, rename. On any failure the temporary file is removed
    and a disk-full condition becomes a StoreError (exit 8)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise disk_error(exc, str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class SetAside:
    """A damaged entry moved out of the way: where it went, why, and what its header said (if
    anything could be read), so that its spend can be booked before the image is bought again."""

    path: Path
    reason: str
    meta: dict[str, Any]


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._set_aside: dict[tuple[str, str], SetAside] = {}

    def _path(self, uid: str, key: str) -> Path:
        return self.root / uid / f"{key}{SUFFIX}"

    def _write(self, uid: str, key: str, header: dict[str, Any], data: bytes = b"") -> None:
        path = self._path(uid, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise disk_error(exc, str(path.parent)) from exc
        head = json.dumps({**header, "image_bytes": len(data)}, separators=(",", ":")).encode()
        atomic_write(path, head + b"\n" + data)

    def put(self, uid: str, key: str, result: ImageResult, meta: dict[str, Any]) -> None:
        header = {
            **meta,
            "state": "paid",
            "mime": result.mime,
            "usage": result.usage.model_dump(),
            "cost_usd": result.cost_usd,
            "request_id": result.request_id,
            "provider": result.provider,
            "model": result.model,
            "latency_s": result.latency_s,
        }
        self._write(uid, key, header, result.data)

    def mark_retry(self, uid: str, key: str, meta: dict[str, Any]) -> None:
        """Replace a paid entry (already stored as rejected, in the ledger) by the gate-retry
        marker, in one rename: a crash leaves either the image or the marker, never neither."""
        self._write(uid, key, {**meta, "state": "gate_retry"})

    def get(self, uid: str, key: str) -> Spooled | None:
        path = self._path(uid, key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        head, _, data = raw.partition(b"\n")
        try:
            meta = json.loads(head)
            if not isinstance(meta, dict):
                raise ValueError("the header is not an object")
        except ValueError:
            return self._damaged(uid, key, path, "its header is not readable", {})
        if meta.get("state") == "gate_retry":
            return Spooled(None, meta)
        if len(data) != meta.get("image_bytes", -1):
            return self._damaged(
                uid, key, path, f"{len(data)} image bytes where {meta.get('image_bytes')} were written", meta
            )
        try:
            result = ImageResult(
                data=data,
                mime=meta["mime"],
                usage=TokenUsage(**meta["usage"]),
                cost_usd=meta["cost_usd"],
                request_id=meta.get("request_id"),
                provider=meta["provider"],
                model=meta["model"],
                latency_s=meta.get("latency_s", 0.0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return self._damaged(uid, key, path, f"its header is incomplete ({type(exc).__name__}: {exc})", meta)
        return Spooled(result, meta)

    def _damaged(self, uid: str, key: str, path: Path, reason: str, meta: dict[str, Any]) -> Spooled | None:
        """Never overwrite a paid image we cannot read: move it aside (a person may recover it),
        say so, and remember it so the job books its spend before buying the image again."""
        dest = path.with_name(f"{path.name}{DAMAGED}{uuid.uuid4().hex[:8]}")
        try:
            os.replace(path, dest)
        except FileNotFoundError:
            return None  # another process set it aside first
        log.warning("damaged spool entry %s (%s): moved aside to %s", path, reason, dest)
        self._set_aside[(uid, key)] = SetAside(dest, reason, meta)
        return None

    def take_set_aside(self, uid: str, key: str) -> SetAside | None:
        """The entry of this job this process set aside (once: the caller books it)."""
        return self._set_aside.pop((uid, key), None)

    def damaged(self) -> list[Path]:
        """Every damaged entry set aside, for `doctor` (and a person) to see."""
        return sorted(self.root.glob(f"*/*{SUFFIX}{DAMAGED}*")) if self.root.exists() else []

    def remove(self, uid: str, key: str) -> None:
        self._path(uid, key).unlink(missing_ok=True)

    def header(self, uid: str, key: str) -> dict[str, Any] | None:
        """An entry's header alone (its first line; the image is not read); None when absent or unreadable."""
        try:
            with open(self._path(uid, key), "rb") as fh:
                head = fh.readline(1 << 16)
            meta = json.loads(head)
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def forget_photo_markers(self, uid: str) -> tuple[int, list[str]]:
        """Withdrawn photo consent: remove the user's gate-retry markers of jobs drawn from their
        photo (the retry would send the photo again); returns how many, and the rejected images
        they name. A
        paid photo image still here is the user's avatar-to-be: the next sweep stores it."""
        removed, rejected = 0, []
        folder = self.root / uid
        keys = sorted(p.name.removesuffix(SUFFIX) for p in folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
        for key in keys:
            meta = self.header(uid, key)
            if meta is None or not meta.get("photo") or meta.get("state") != "gate_retry":
                continue
            self.remove(uid, key)
            removed += 1
            if meta.get("rejected"):
                rejected.append(str(meta["rejected"]))
        return removed, rejected

    def pending(self) -> list[tuple[str, str]]:
        """(user, request key) of every spooled entry (paid images and gate-retry markers)."""
        if not self.root.exists():
            return []
        return sorted((p.parent.name, p.name.removesuffix(SUFFIX)) for p in self.root.glob(f"*/*{SUFFIX}"))

    def sweep_tmp(self) -> int:
        """Remove temporary files a killed process left behind (never a complete entry)."""
        n = 0
        if self.root.exists():
            for p in self.root.glob("*/.*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
        return n

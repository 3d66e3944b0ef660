"""Images (files under ``avatars/<uid>/``, written by atomic rename) and avatar records
(idempotent by id)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from ...errors import StoreError
from ...models import AvatarRecord, validate_user_id
from ..base import missing_image
from .db import LocalDb
from .forget import refuse_erased
from .schema import iso, timing_values

_INSERT_AVATAR = """INSERT OR IGNORE INTO avatars(id, uid, target, created_at, record,
    queue_wait_s, provider_s, post_process_s, store_s, total_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


class Avatars(LocalDb):
    # ------------------------------------------------------------------------------- images
    def _path(self, ref: str) -> Path:
        path = (self.root / ref).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StoreError(f"Image reference {ref!r} points outside the data directory.", "This is a bug.")
        return path

    def put_image(self, uid: str, name: str, data: bytes, thumb: bytes | None) -> tuple[str, str | None]:
        refuse_erased(self, validate_user_id(uid))
        self._open()
        folder = self.root / "avatars" / uid
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        refs: list[str | None] = []
        for suffix, blob in ((".webp", data), (".thumb.webp", thumb)):
            if blob is None:
                refs.append(None)
                continue
            final = folder / f"{name}{suffix}"
            tmp = final.with_suffix(final.suffix + f".{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, final)
            refs.append(str(final.relative_to(self.root)))
        self._count("writes")
        self._count("bytes_stored", len(data) + len(thumb or b""))
        return str(refs[0]), refs[1]

    def read_image(self, ref: str) -> bytes:
        self._count("reads")
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError as exc:  # one missing file is its user's, not an outage
            raise missing_image(ref) from exc

    def image_url(self, ref: str) -> str:
        return self._path(ref).as_uri()

    def image_size(self, ref: str) -> int:
        path = self._path(ref)
        return path.stat().st_size if path.exists() else 0

    def delete_image(self, ref: str) -> None:
        self._path(ref).unlink(missing_ok=True)
        self._count("deletes")

    # ------------------------------------------------------------------------------ records
    def put_avatar(self, record: AvatarRecord) -> bool:
        """Idempotent by id: returns False when the record already existed (it is left as is)."""
        refuse_erased(self, record.user_id)
        cur = self._open().execute(
            _INSERT_AVATAR,
            (
                record.id,
                record.user_id,
                record.target,
                iso(record.created_at),
                record.model_dump_json(),
                *timing_values(record.timings),
            ),
        )
        self._count("writes")
        return cur.rowcount == 1

    def get_avatar(self, uid: str, avatar_id: str) -> AvatarRecord | None:
        rows = self._q("SELECT record FROM avatars WHERE uid = ? AND id = ?", (uid, avatar_id))
        return AvatarRecord.model_validate_json(rows[0][0]) if rows else None

    def list_avatars(self, uid: str) -> list[AvatarRecord]:
        rows = self._q("SELECT record FROM avatars WHERE uid = ? ORDER BY created_at, id", (uid,))
        return [AvatarRecord.model_validate_json(r[0]) for r in rows]

    def latest_avatar(self, uid: str, target: str, statuses: tuple[str, ...]) -> AvatarRecord | None:
        rows = self._q(
            "SELECT record FROM avatars WHERE uid = ? AND target = ? AND json_extract(record, '$.status') "
            "IN (SELECT value FROM json_each(?)) ORDER BY created_at DESC, id DESC LIMIT 1",
            (uid, target, json.dumps(list(statuses))),
        )
        return AvatarRecord.model_validate_json(rows[0][0]) if rows else None

    def delete_avatar(self, uid: str, avatar_id: str) -> None:
        self._q("DELETE FROM avatars WHERE uid = ? AND id = ?", (uid, avatar_id), op="deletes")

    def forget_avatars(self, uid: str) -> int:
        """Erasure: the user's image folder (images, thumbnails, rejected images), then the records."""
        folder = self.root / "avatars" / validate_user_id(uid)
        if folder.exists():
            shutil.rmtree(folder)
        self._count("deletes")
        return self._open().execute("DELETE FROM avatars WHERE uid = ?", (uid,)).rowcount

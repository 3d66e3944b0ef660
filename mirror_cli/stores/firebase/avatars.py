"""Avatar files in Cloud Storage (private, served by signed URLs) and their records in Firestore."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from ...errors import StoreError
from ...models import AvatarRecord, validate_user_id
from .client import IMAGE_CACHE_CONTROL, FirebaseClient, _iso, _wrap


class Avatars(FirebaseClient):
    # ------------------------------------------------------------------------------- images
    def put_image(self, uid: str, name: str, data: bytes, thumb: bytes | None) -> tuple[str, str | None]:
        validate_user_id(uid)
        refs: list[str | None] = []
        for suffix, blob_bytes in ((".webp", data), (".thumb.webp", thumb)):
            if blob_bytes is None:
                refs.append(None)
                continue
            path = f"avatars/{uid}/{name}{suffix}"
            blob = self.bucket.blob(path)
            blob.cache_control = IMAGE_CACHE_CONTROL
            blob.metadata = {"user": uid, "firebaseStorageDownloadTokens": str(uuid.uuid4())}
            try:
                blob.upload_from_string(blob_bytes, content_type="image/webp")
            except Exception as exc:
                raise _wrap(exc, f"uploading {path}") from exc
            self._count("storage_writes")
            self._count("bytes_stored", len(blob_bytes))
            refs.append(path)
        return str(refs[0]), refs[1]

    def _blob(self, ref: str) -> Any:
        if not ref.startswith("avatars/") or ".." in ref:
            raise StoreError(f"Image reference {ref!r} is not an avatar path.", "This is a bug.")
        return self.bucket.blob(ref)

    def read_image(self, ref: str) -> bytes:
        try:
            data: bytes = self._blob(ref).download_as_bytes()
        except StoreError:
            raise
        except Exception as exc:
            raise _wrap(exc, f"downloading {ref}") from exc
        self._count("storage_reads")
        return data

    def image_url(self, ref: str) -> str:
        """A V4 signed URL when a service-account key can sign, else a Firebase download-token URL.
        Objects are never made public."""
        blob = self._blob(ref)
        if self._signer is not None:
            url: str = blob.generate_signed_url(
                version="v4",
                method="GET",
                credentials=self._signer,
                expiration=timedelta(seconds=self.settings.signed_url_ttl_s),
            )
            return url
        blob.reload()
        token = (blob.metadata or {}).get("firebaseStorageDownloadTokens", "").split(",")[0]
        from urllib.parse import quote

        return (
            f"https://firebasestorage.googleapis.com/v0/b/{self.bucket_name}/o/{quote(ref, safe='')}"
            f"?alt=media&token={token}"
        )

    def image_size(self, ref: str) -> int:
        blob = self.bucket.get_blob(ref)
        return int(blob.size) if blob is not None and blob.size is not None else 0

    def delete_image(self, ref: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(ref).delete(timeout=self._rt["timeout"])
        except NotFound:
            return
        except Exception as exc:
            raise _wrap(exc, f"deleting {ref}") from exc
        self._count("deletes")

    # ------------------------------------------------------------------------------ avatars
    def _avatars(self, uid: str) -> Any:
        return self._users().document(validate_user_id(uid)).collection("avatars")

    def put_avatar(self, record: AvatarRecord) -> bool:
        from google.api_core.exceptions import AlreadyExists, Conflict

        body = {**json.loads(record.model_dump_json()), "created_at": _iso(record.created_at)}
        try:
            self._avatars(record.user_id).document(record.id).create(body, **self._rt)
        except (AlreadyExists, Conflict):
            return False
        except Exception as exc:
            raise _wrap(exc, f"writing avatar {record.id}") from exc
        finally:
            self._count("writes")
        return True

    def get_avatar(self, uid: str, avatar_id: str) -> AvatarRecord | None:
        try:
            snap = self._avatars(uid).document(avatar_id).get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, f"reading avatar {avatar_id}") from exc
        self._count("reads")
        return AvatarRecord.model_validate(snap.to_dict()) if snap.exists else None

    def list_avatars(self, uid: str) -> list[AvatarRecord]:
        try:
            docs = list(self._avatars(uid).order_by("created_at").stream(**self._rt))
        except Exception as exc:
            raise _wrap(exc, f"listing the avatars of {uid}") from exc
        self._count("reads", max(1, len(docs)))
        records = [AvatarRecord.model_validate(d.to_dict()) for d in docs]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def delete_avatar(self, uid: str, avatar_id: str) -> None:
        try:
            self._avatars(uid).document(avatar_id).delete(**self._rt)
        except Exception as exc:
            raise _wrap(exc, f"deleting avatar {avatar_id}") from exc
        self._count("deletes")

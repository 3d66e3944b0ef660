"""Avatar files in Cloud Storage (private, served by signed URLs) and their records in Firestore."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from ...errors import StoreError
from ...models import AvatarRecord, validate_user_id
from ..base import missing_image
from .client import IMAGE_CACHE_CONTROL, FirebaseClient, _iso, _wrap
from .forget import delete_all, refuse_erased

BATCH_BLOBS = 500
SIGNING_FIX = (
    "Use a service-account key (GOOGLE_APPLICATION_CREDENTIALS / --firebase-credentials), or run where a "
    "service account is attached (Cloud Run, GCE) and give it roles/iam.serviceAccountTokenCreator on itself."
)


def _has_key(creds: Any) -> bool:
    """Service-account credentials loaded from a key file can sign locally."""
    return type(creds).__module__.endswith("service_account") and getattr(creds, "signer", None) is not None


class Avatars(FirebaseClient):
    # ------------------------------------------------------------------------------- images
    def put_image(self, uid: str, name: str, data: bytes, thumb: bytes | None) -> tuple[str, str | None]:
        """Upload the image and its thumbnail (side by side: two requests, one round trip)."""
        refuse_erased(self, validate_user_id(uid))
        path, thumb_path = f"avatars/{uid}/{name}.webp", f"avatars/{uid}/{name}.thumb.webp"
        if thumb is None:
            self._upload(uid, path, data)
            return path, None
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(self._upload, uid, path, data), pool.submit(self._upload, uid, thumb_path, thumb)]:
                done.result()
        return path, thumb_path

    def _upload(self, uid: str, path: str, data: bytes) -> None:
        blob = self.bucket.blob(path)
        blob.cache_control = IMAGE_CACHE_CONTROL
        # No Firebase download token: a token URL never expires. Avatars are served by signed
        # URLs only; storage.rules lets a signed-in user read their own folder.
        blob.metadata = {"user": uid}
        with self._rpc(f"uploading {path}"):
            blob.upload_from_string(data, content_type="image/webp", **self._gcs)
        self._count("storage_writes")
        self._count("bytes_stored", len(data))

    def _blob(self, ref: str) -> Any:
        if not ref.startswith("avatars/") or ".." in ref:
            raise StoreError(f"Image reference {ref!r} is not an avatar path.", "This is a bug.")
        return self.bucket.blob(ref)

    def read_image(self, ref: str) -> bytes:
        try:
            data: bytes = self._blob(ref).download_as_bytes(**self._gcs)
        except StoreError:
            raise
        except Exception as exc:
            if type(exc).__name__ == "NotFound":  # one missing object is its user's, not an outage
                raise missing_image(ref) from exc
            raise _wrap(exc, f"downloading {ref}") from exc
        self._count("storage_reads")
        return data

    def image_url(self, ref: str) -> str:
        """A V4 signed URL, valid for signed_url_ttl_s; objects are never public and carry no
        download token. Signed with the service account's key when there is one, else through
        the IAM signBlob API with the ADC service account's token (Cloud Run, GCE). Under the
        emulator, the emulator's own URL."""
        blob = self._blob(ref)
        ttl = timedelta(seconds=self.settings.signed_url_ttl_s)
        if os.environ.get("STORAGE_EMULATOR_HOST") and self._google_creds is None:
            host = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")
            return f"{host}/download/storage/v1/b/{self.bucket_name}/o/{quote(ref, safe='')}?alt=media"
        creds = self._google_creds
        problem = self.url_signing_problem()
        if problem is not None:
            raise StoreError(f"Avatar URLs cannot be signed: {problem}.", SIGNING_FIX)
        with self._rpc(f"signing a URL for {ref}"):
            if _has_key(creds):
                url: str = blob.generate_signed_url(version="v4", method="GET", credentials=creds, expiration=ttl)
                return url
            from google.auth.transport.requests import Request

            if not creds.valid:
                creds.refresh(Request())
            url = blob.generate_signed_url(
                version="v4",
                method="GET",
                expiration=ttl,
                service_account_email=creds.service_account_email,
                access_token=creds.token,
            )
            return url

    def doctor_checks(self) -> list[dict[str, str | None]]:
        """`mirror doctor`'s lines for this store: where the credentials come from, and whether
        avatar URLs can be signed with them."""
        problem = self.url_signing_problem()
        return [
            {"check": "credentials", "status": "ok", "detail": self.credential_source, "fix": None},
            {
                "check": "signed urls",
                "status": "fail" if problem else "ok",
                "detail": problem or f"V4 signed URLs, valid {self.settings.signed_url_ttl_s} s",
                "fix": SIGNING_FIX if problem else None,
            },
        ]

    def url_signing_problem(self) -> str | None:
        """Why avatar URLs cannot be signed with these credentials (None: they can)."""
        creds = self._google_creds
        if creds is None:
            return None if os.environ.get("STORAGE_EMULATOR_HOST") else "there are no credentials"
        if _has_key(creds) or getattr(creds, "service_account_email", None) not in (None, "default"):
            return None
        if type(creds).__name__ == "Credentials" and type(creds).__module__.endswith("compute_engine.credentials"):
            return None  # the metadata server's service account: its email is known after a refresh
        return (
            f"the credentials ({self.credential_source}) have no private key and no service account "
            "to sign with through IAM signBlob"
        )

    def image_size(self, ref: str) -> int:
        with self._rpc(f"reading the size of {ref}"):
            blob = self.bucket.get_blob(ref, **self._gcs)
        return int(blob.size) if blob is not None and blob.size is not None else 0

    def delete_image(self, ref: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(ref).delete(**self._gcs)
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

        refuse_erased(self, record.user_id)

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
        with self._rpc(f"reading avatar {avatar_id}", "reads"):
            snap = self._avatars(uid).document(avatar_id).get(**self._rt)
        return AvatarRecord.model_validate(snap.to_dict()) if snap.exists else None

    def list_avatars(self, uid: str) -> list[AvatarRecord]:
        with self._rpc(f"listing the avatars of {uid}"):
            docs = list(self._record(self._avatars(uid).order_by("created_at")).stream(**self._rt))
        self._count("reads", max(1, len(docs)))
        records = [AvatarRecord.model_validate(d.to_dict()) for d in docs]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def latest_avatar(self, uid: str, target: str, statuses: tuple[str, ...]) -> AvatarRecord | None:
        """One query on the user's avatars (index: target, status, created_at descending)."""
        from google.cloud.firestore import FieldFilter, Query

        query = (
            self._avatars(uid)
            .where(filter=FieldFilter("target", "==", target))
            .where(filter=FieldFilter("status", "in", list(statuses)))
            .order_by("created_at", direction=Query.DESCENDING)
            .limit(1)
        )
        with self._rpc(f"reading the latest {target} avatar of {uid}", "reads"):
            docs = list(self._record(query).stream(**self._rt))
        return AvatarRecord.model_validate(docs[0].to_dict()) if docs else None

    def delete_avatar(self, uid: str, avatar_id: str) -> None:
        with self._rpc(f"deleting avatar {avatar_id}", "deletes"):
            self._avatars(uid).document(avatar_id).delete(**self._rt)

    def forget_avatars(self, uid: str) -> int:
        """Erasure: every Storage object under ``avatars/<uid>/`` (images, thumbnails, rejected
        images), listed a page at a time, then the avatar records."""
        prefix = f"avatars/{validate_user_id(uid)}/"
        with self._rpc(f"erasing {prefix}"):
            for blob in self.bucket.list_blobs(prefix=prefix, page_size=BATCH_BLOBS, **self._gcs):
                blob.delete(**self._gcs)
                self._count("storage_deletes")
        return delete_all(self, self._avatars(uid), "avatar records")

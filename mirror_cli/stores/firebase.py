"""The production store: Firestore for users, records, cache, ledger, limits and runs; Cloud
Storage for images, served by V4 signed URLs (or Firebase download tokens), never made public.

Designed for what both real Firestore and the emulator do correctly: get/set/create, batched
writes, ``Increment``, equality + range filters with ``order_by``/``limit`` on stored fields, and
``count()``. No collection-group queries, no ``ListDocuments``, no cursors or offsets (keyset
pagination on a stored field instead), no read-modify-write transactions (limits are
``Increment`` + read-back + compensation, which never overshoots).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StoreError
from ..models import AvatarRecord, LedgerEvent, Persona, Progress, validate_user_id
from .base import (
    DUE_INDEX_VERSION,
    SHARD_BUCKETS,
    CacheEntry,
    Caps,
    DueQuery,
    JobState,
    LimitReached,
    Reservation,
    RunInfo,
    shard_bucket,
)

if TYPE_CHECKING:
    from ..settings import Settings

MICRO = 1_000_000  # money is counted in integer micro-dollars so increments never drift
PAGE = 500
IMAGE_CACHE_CONTROL = "private, max-age=31536000, immutable"  # avatar files never change once written


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _anonymous() -> Any:
    """Credentials for the emulators, which accept any caller."""
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def _persona(data: dict[str, Any] | None) -> Persona:
    """A profile document without the fields the store adds to it."""
    d = dict(data or {})
    for extra in ("uid", "updated_at", "latest_rank", "shard"):
        d.pop(extra, None)
    return Persona.model_validate(d)


def _wrap(exc: Exception, what: str) -> StoreError:
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.PermissionDenied | gexc.Forbidden | gexc.Unauthenticated):
        return StoreError(
            f"Firebase refused {what}: permission denied ({exc.message}).",
            "Give the service account the Cloud Datastore User and Storage Object Admin roles.",
        )
    if isinstance(exc, gexc.NotFound):
        return StoreError(
            f"Firebase could not find what {what} needs ({exc.message}).",
            "Check the project id and the bucket name (--firebase-bucket / MIRROR_FIREBASE_BUCKET).",
        )
    if isinstance(exc, gexc.ServiceUnavailable | gexc.DeadlineExceeded | gexc.RetryError):
        return StoreError(
            f"Firebase is unreachable while {what}: {exc}.",
            "Check the network (or the emulators); paid images stay in the spool and the run can be resumed.",
        )
    return StoreError(f"Firebase failed while {what}: {exc}.", "Run again with --debug for details.")


class FirebaseStore:
    name = "firebase"

    def __init__(self, settings: Settings) -> None:
        try:
            import firebase_admin
            from firebase_admin import credentials, firestore
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "The firebase store needs the firebase-admin package.", "pip install 'mirror-cli[firebase]'."
            ) from exc
        self.settings = settings
        emulated = bool(os.environ.get("FIRESTORE_EMULATOR_HOST"))
        project = (
            settings.firebase_project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        )
        cred_path = settings.firebase_credentials or (
            Path(p) if (p := os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")) else None
        )
        cred: Any = None
        if cred_path is not None:
            try:
                cred = credentials.Certificate(str(cred_path))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"The service-account file {cred_path} cannot be used: {exc}.",
                    "Download a service-account key (JSON) and point GOOGLE_APPLICATION_CREDENTIALS at it.",
                ) from exc
            project = project or cred.project_id
        elif not emulated:
            raise ConfigError(
                "No Firebase credentials: GOOGLE_APPLICATION_CREDENTIALS is not set.",
                "Set GOOGLE_APPLICATION_CREDENTIALS (or --firebase-credentials) to a service-account "
                "JSON file, or FIRESTORE_EMULATOR_HOST for the emulator.",
            )
        if not project:
            raise ConfigError("No Firebase project id.", "Pass --firebase-project or set MIRROR_FIREBASE_PROJECT.")
        if not settings.firebase_bucket:
            raise ConfigError("No Cloud Storage bucket.", "Pass --firebase-bucket or set MIRROR_FIREBASE_BUCKET.")
        self.project = project
        self.bucket_name = settings.firebase_bucket
        self._signer = cred.get_credential() if cred is not None else None
        app_name = f"mirror-{uuid.uuid4().hex[:8]}"
        options = {"projectId": project, "storageBucket": self.bucket_name}
        if cred is None:

            class _Emulator(credentials.Base):  # type: ignore[misc]
                def get_credential(self) -> Any:
                    return _anonymous()

            cred = _Emulator()
        self._app = firebase_admin.initialize_app(cred, options, name=app_name)
        self.db = firestore.client(self._app)
        self._bucket: Any = None
        from google.api_core.retry import Retry

        # Every Firestore call gives up after store_timeout_s (retrying transient errors until
        # then), so an unreachable store stops a run in seconds, not minutes.
        timeout = settings.store_timeout_s
        self._rt: dict[str, Any] = {"retry": Retry(initial=0.1, maximum=2.0, timeout=timeout), "timeout": timeout}
        self._ops: dict[tuple[str, str], int] = {}
        self._ops_lock = threading.Lock()

    # ----------------------------------------------------------------------------- plumbing
    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.cloud import storage as gcs  # type: ignore[attr-defined]

                client = gcs.Client(project=self.project, credentials=_anonymous())
                self._bucket = client.bucket(self.bucket_name)
            else:
                from firebase_admin import storage

                self._bucket = storage.bucket(self.bucket_name, app=self._app)
        return self._bucket

    def _count(self, op: str, n: int = 1) -> None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        with self._ops_lock:
            self._ops[(day, op)] = self._ops.get((day, op), 0) + n

    def flush_ops(self) -> None:
        from google.cloud.firestore import Increment

        with self._ops_lock:
            pending, self._ops = self._ops, {}
        by_day: dict[str, dict[str, Any]] = {}
        for (day, op), n in pending.items():
            by_day.setdefault(day, {})[op] = Increment(n)
        for day, fields in by_day.items():
            self.db.collection("store_ops").document(day).set(fields, merge=True, **self._rt)

    def close(self) -> None:
        import firebase_admin

        # Counting must never break a run that already finished.
        with contextlib.suppress(Exception):
            self.flush_ops()
        firebase_admin.delete_app(self._app)

    def _keyset(
        self, query: Any, field: str, what: str, start: str = "", inclusive: bool = False, page_size: int = PAGE
    ) -> Iterator[Any]:
        """Every document of ``query`` in ``field`` order, a page at a time, by keyset on a stored
        field (the emulator ignores cursors and offsets; keysets are cheap on Firestore too)."""
        from google.cloud.firestore import FieldFilter

        last, first = start, True
        while True:
            page = query.where(filter=FieldFilter(field, ">=" if first and inclusive else ">", last))
            try:
                docs = list(page.order_by(field).limit(page_size).stream(**self._rt))
            except Exception as exc:
                raise _wrap(exc, what) from exc
            self._count("reads", max(1, len(docs)))
            yield from docs
            if len(docs) < page_size:
                return
            last, first = docs[-1].get(field), False

    def _users(self) -> Any:
        return self.db.collection("users")

    # -------------------------------------------------------------------------------- users
    def iter_user_ids(self, page_size: int = PAGE) -> Iterator[str]:
        for doc in self._keyset(self._users().select(["uid"]), "uid", "listing users", page_size=page_size):
            yield doc.get("uid")

    def get_user(self, uid: str) -> Persona | None:
        validate_user_id(uid)
        try:
            snap = self._users().document(uid).get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, f"reading user {uid}") from exc
        self._count("reads")
        return _persona(snap.to_dict()) if snap.exists else None

    def put_user(self, persona: Persona) -> None:
        """Create the profile with its due fields (no stage yet, its shard bucket), or replace the
        profile fields of an existing one, keeping the due fields the tool maintains."""
        from google.api_core.exceptions import AlreadyExists, Conflict

        validate_user_id(persona.id)
        body = {
            **persona.model_dump(mode="json"),
            "uid": persona.id,
            "updated_at": _iso(datetime.now(UTC)),
            "shard": shard_bucket(persona.id),
        }
        doc = self._users().document(persona.id)
        try:
            try:
                doc.create({**body, "latest_rank": -1}, **self._rt)
            except (AlreadyExists, Conflict):
                doc.set(body, merge=list(body), **self._rt)
                self._count("writes")
        except Exception as exc:
            raise _wrap(exc, f"writing user {persona.id}") from exc
        self._count("writes")

    def set_progress(self, uid: str, progress: Progress) -> None:
        validate_user_id(uid)
        try:
            self._users().document(uid).update(
                {"progress": progress.model_dump(mode="json"), "updated_at": _iso(datetime.now(UTC))}, **self._rt
            )
        except Exception as exc:
            raise _wrap(exc, f"updating the progress of {uid}") from exc
        self._count("writes")

    def due_users(
        self, queries: list[DueQuery], buckets: tuple[int, int] = (0, SHARD_BUCKETS), page_size: int = PAGE
    ) -> Iterator[tuple[Persona, int]]:
        """One indexed query per stage (firestore.indexes.json: latest_rank, progress.active_days,
        shard): reads are the due users' documents, plus one per empty query."""
        from google.cloud.firestore import FieldFilter

        for q in queries:
            query = (
                self._users()
                .where(filter=FieldFilter("latest_rank", "==", q.latest_rank))
                .where(filter=FieldFilter("progress.active_days", ">=", q.min_active_days))
            )
            if buckets != (0, SHARD_BUCKETS):
                query = query.where(filter=FieldFilter("shard", ">=", buckets[0])).where(
                    filter=FieldFilter("shard", "<", buckets[1])
                )
                query = query.order_by("progress.active_days").order_by("shard")
            else:
                query = query.order_by("progress.active_days")
            query = query.order_by("__name__").limit(page_size)
            last = None
            while True:
                page = query.start_after(last) if last is not None else query
                try:
                    docs = list(page.stream(**self._rt))
                except Exception as exc:
                    raise _wrap(exc, "finding the users who are due") from exc
                self._count("reads", max(1, len(docs)))
                for doc in docs:
                    yield _persona(doc.to_dict()), q.latest_rank
                if len(docs) < page_size:
                    break
                last = docs[-1]

    def raise_latest_rank(self, uid: str, rank: int) -> None:
        from google.api_core.exceptions import NotFound
        from google.cloud.firestore import Maximum

        try:
            self._users().document(validate_user_id(uid)).update(
                {"latest_rank": Maximum(rank), "shard": shard_bucket(uid)}, **self._rt
            )
        except NotFound:
            return  # not a stored user (an example persona): it is indexed when it is stored
        except Exception as exc:
            raise _wrap(exc, f"updating the due index of {uid}") from exc
        self._count("writes")

    def due_index_version(self) -> int:
        try:
            snap = self.db.collection("store_meta").document("due_index").get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "reading the due index version") from exc
        self._count("reads")
        if snap.exists:
            return int((snap.to_dict() or {}).get("version", 0))
        # No version yet: when every profile already carries the due fields (a project that
        # started with this version), the index is complete; two count queries tell.
        from google.cloud.firestore import FieldFilter

        try:
            total = self._users().count().get(**self._rt)[0][0].value
            indexed = (
                self._users().where(filter=FieldFilter("latest_rank", ">=", -1)).count().get(**self._rt)[0][0].value
            )
        except Exception as exc:
            raise _wrap(exc, "checking the due index") from exc
        self._count("reads", 2 + (total + indexed) // 1000)  # billed per 1,000 index entries
        if total == indexed:
            self.set_due_index_version(DUE_INDEX_VERSION)
            return DUE_INDEX_VERSION
        return 0

    def set_due_index_version(self, version: int) -> None:
        try:
            self.db.collection("store_meta").document("due_index").set({"version": version}, **self._rt)
        except Exception as exc:
            raise _wrap(exc, "writing the due index version") from exc
        self._count("writes")

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

    # -------------------------------------------------------------------------------- cache
    def _cache(self) -> Any:
        return self.db.collection("avatar_cache")

    @staticmethod
    def _cache_id(uid: str, key: str) -> str:
        return f"{validate_user_id(uid)}.{key}"  # '.' never occurs in a user id: ids cannot collide

    def cache_get(self, uid: str, request_key: str) -> CacheEntry | None:
        try:
            snap = self._cache().document(self._cache_id(uid, request_key)).get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "reading the cache") from exc
        self._count("reads")
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        if d.get("uid") != uid:  # scoped per user, always
            return None
        return CacheEntry(uid, request_key, d["avatar_id"], datetime.fromisoformat(d["created_at"]))

    def cache_put(self, entry: CacheEntry) -> None:
        doc_id = self._cache_id(entry.user_id, entry.request_key)
        try:
            self._cache().document(doc_id).set(
                {
                    "uid": entry.user_id,
                    "request_key": entry.request_key,
                    "avatar_id": entry.avatar_id,
                    "doc_id": doc_id,
                    "created_at": _iso(entry.created_at),
                },
                **self._rt,
            )
        except Exception as exc:
            raise _wrap(exc, "writing the cache") from exc
        self._count("writes")

    def cache_entries(self, uid: str | None = None) -> list[CacheEntry]:
        from google.cloud.firestore import FieldFilter

        query = self._cache()
        if uid:
            query = query.where(filter=FieldFilter("uid", "==", uid))
        out = []
        for snap in self._keyset(query, "doc_id", "listing the cache"):
            d = snap.to_dict() or {}
            out.append(CacheEntry(d["uid"], d["request_key"], d["avatar_id"], datetime.fromisoformat(d["created_at"])))
        return sorted(out, key=lambda e: e.created_at)

    def cache_delete(self, uid: str, request_key: str) -> None:
        try:
            self._cache().document(self._cache_id(uid, request_key)).delete(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "deleting a cache entry") from exc
        self._count("deletes")

    # ------------------------------------------------------------------------------- ledger
    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool:
        """Append an event (``create``: a repeated event_id is a no-op) and bump the daily and
        monthly counters with atomic increments."""
        from google.api_core.exceptions import AlreadyExists, Conflict
        from google.cloud.firestore import Increment

        eid = (event_id or uuid.uuid4().hex).replace("/", "_")
        ts = _iso(event.ts)
        body = {**json.loads(event.model_dump_json()), "ts": ts, "seq": f"{ts}|{eid}", "uid": event.user_id}
        try:
            self.db.collection("ledger").document(eid).create(body, **self._rt)
        except (AlreadyExists, Conflict):
            return False
        except Exception as exc:
            raise _wrap(exc, "writing the usage ledger") from exc
        counters = {event.kind: Increment(1), "cost_micro_usd": Increment(round(event.cost_usd * MICRO))}
        try:
            self.db.collection("usage_daily").document(ts[:10]).set(counters, merge=True, **self._rt)
            self.db.collection("usage_monthly").document(ts[:7]).set(counters, merge=True, **self._rt)
        except Exception as exc:
            raise _wrap(exc, "updating usage counters") from exc
        self._count("writes", 3)
        return True

    def events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> list[LedgerEvent]:
        from google.cloud.firestore import FieldFilter

        query = self.db.collection("ledger").where(filter=FieldFilter("seq", "<", _iso(until) if until else "~"))
        if uid:
            query = query.where(filter=FieldFilter("uid", "==", uid))
        out = []
        for snap in self._keyset(
            query, "seq", "reading the usage ledger", start=_iso(since) if since else "", inclusive=True
        ):
            d = snap.to_dict() or {}
            for extra in ("seq", "uid"):
                d.pop(extra, None)
            out.append(LedgerEvent.model_validate(d))
        return out

    # ------------------------------------------------------------------------------- limits
    def reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation:
        """Increment every counter, read them back, and undo the increments if any cap is passed.
        Concurrent reservers can only both back off, never both pass: no overshoot. A refusal
        that a re-read shows was only a concurrent spike is tried again after a short jitter."""
        import random
        import time

        for attempt in range(6):
            try:
                return self._try_reserve(uid, request_key, amount, now, caps)
            except LimitReached:
                if attempt == 5 or not self._would_fit(uid, amount, now, caps):
                    raise
                time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    def _would_fit(self, uid: str, amount: float, now: datetime, caps: Caps) -> bool:
        d = self.db.collection("limits_daily").document(now.strftime("%Y-%m-%d")).get(**self._rt).to_dict() or {}
        m = self.db.collection("limits_monthly").document(now.strftime("%Y-%m")).get(**self._rt).to_dict() or {}
        self._count("reads", 2)
        return not (
            (caps.per_user_daily is not None and d.get(f"user_{uid}", 0) + 1 > caps.per_user_daily)
            or (caps.system_daily is not None and d.get("system", 0) + 1 > caps.system_daily)
            or (
                caps.monthly_budget_usd is not None
                and m.get("spent_micro_usd", 0) + round(amount * MICRO) > round(caps.monthly_budget_usd * MICRO)
            )
        )

    def _try_reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation:
        from google.cloud.firestore import Increment

        day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
        micro = round(amount * MICRO)
        daily = self.db.collection("limits_daily").document(day)
        monthly = self.db.collection("limits_monthly").document(month)
        user_field = f"user_{uid}"
        try:
            batch = self.db.batch()
            batch.set(daily, {"system": Increment(1), user_field: Increment(1)}, merge=True)
            batch.set(monthly, {"spent_micro_usd": Increment(micro)}, merge=True)
            batch.commit(**self._rt)
            d, m = daily.get(**self._rt).to_dict() or {}, monthly.get(**self._rt).to_dict() or {}
        except Exception as exc:
            raise _wrap(exc, "reserving budget") from exc
        self._count("writes", 2)
        self._count("reads", 2)
        refusal: LimitReached | None = None
        if caps.per_user_daily is not None and d.get(user_field, 0) > caps.per_user_daily:
            refusal = LimitReached("per_user_daily", f"user {uid} reached {caps.per_user_daily} generations today")
        elif caps.system_daily is not None and d.get("system", 0) > caps.system_daily:
            refusal = LimitReached("system_daily", f"the system reached {caps.system_daily} generations today")
        elif caps.monthly_budget_usd is not None and m.get("spent_micro_usd", 0) > round(
            caps.monthly_budget_usd * MICRO
        ):
            refusal = LimitReached(
                "monthly_budget",
                f"the monthly budget of ${caps.monthly_budget_usd:.2f} would be exceeded "
                f"(this job needs ${amount:.4f})",
            )
        res = Reservation(uuid.uuid4().hex, uid, amount, day, month)
        if refusal is not None:
            self._undo(res)
            raise refusal
        try:
            self.db.collection("reservations").document(res.id).set(
                {
                    "uid": uid,
                    "request_key": request_key,
                    "amount_micro_usd": micro,
                    "day": day,
                    "month": month,
                    "state": "held",
                    "created_at": _iso(now),
                },
                **self._rt,
            )
        except Exception as exc:
            self._undo(res)
            raise _wrap(exc, "recording a reservation") from exc
        self._count("writes")
        return res

    def _undo(self, res: Reservation) -> None:
        from google.cloud.firestore import Increment

        batch = self.db.batch()
        batch.set(
            self.db.collection("limits_daily").document(res.day),
            {"system": Increment(-1), f"user_{res.user_id}": Increment(-1)},
            merge=True,
        )
        batch.set(
            self.db.collection("limits_monthly").document(res.month),
            {"spent_micro_usd": Increment(-round(res.amount * MICRO))},
            merge=True,
        )
        batch.commit(**self._rt)
        self._count("writes", 2)

    def settle(self, reservation: Reservation, actual: float) -> None:
        from google.cloud.firestore import Increment

        delta = round(actual * MICRO) - round(reservation.amount * MICRO)
        try:
            batch = self.db.batch()
            batch.set(
                self.db.collection("limits_monthly").document(reservation.month),
                {"spent_micro_usd": Increment(delta)},
                merge=True,
            )
            batch.set(
                self.db.collection("reservations").document(reservation.id),
                {"state": "settled", "actual_micro_usd": round(actual * MICRO)},
                merge=True,
            )
            batch.commit(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "settling a reservation") from exc
        self._count("writes", 2)

    def release(self, reservation: Reservation) -> None:
        try:
            self._undo(reservation)
            self.db.collection("reservations").document(reservation.id).set(
                {"state": "released"}, merge=True, **self._rt
            )
        except Exception as exc:
            raise _wrap(exc, "releasing a reservation") from exc
        self._count("writes")

    # --------------------------------------------------------------------------------- runs
    def create_run(self, run: RunInfo) -> None:
        try:
            self.db.collection("runs").document(run.id).create(run.to_dict(), **self._rt)
        except Exception as exc:
            raise _wrap(exc, "creating a run") from exc
        self._count("writes")

    def update_run(self, run: RunInfo) -> None:
        try:
            self.db.collection("runs").document(run.id).set(run.to_dict(), **self._rt)
        except Exception as exc:
            raise _wrap(exc, "updating a run") from exc
        self._count("writes")

    def get_run(self, run_id: str) -> RunInfo | None:
        try:
            snap = self.db.collection("runs").document(run_id.replace("/", "_")).get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "reading a run") from exc
        self._count("reads")
        return RunInfo.from_dict(snap.to_dict() or {}) if snap.exists else None

    def list_runs(self, limit: int = 20) -> list[RunInfo]:
        from google.cloud import firestore

        try:
            docs = list(
                self.db.collection("runs")
                .order_by("created_at", direction=firestore.Query.DESCENDING)
                .limit(limit)
                .stream(**self._rt)
            )
        except Exception as exc:
            raise _wrap(exc, "listing runs") from exc
        self._count("reads", max(1, len(docs)))
        return [RunInfo.from_dict(d.to_dict() or {}) for d in docs]

    def put_job_state(self, state: JobState) -> None:
        body = state.to_dict()
        try:
            self.db.collection("runs").document(state.run_id).collection("jobs").document(state.job_id).set(
                body, **self._rt
            )
        except Exception as exc:
            raise _wrap(exc, "recording a job's state") from exc
        self._count("writes")

    def job_states(self, run_id: str) -> list[JobState]:
        jobs = self.db.collection("runs").document(run_id).collection("jobs")
        return [
            JobState.from_dict(run_id, snap.to_dict() or {})
            for snap in self._keyset(jobs, "job_id", "reading a run's jobs")
        ]

    # --------------------------------------------------------------------------- accounting
    def op_counts(self, day: str) -> dict[str, int]:
        try:
            snap = self.db.collection("store_ops").document(day).get(**self._rt)
        except Exception as exc:
            raise _wrap(exc, "reading operation counts") from exc
        counts = {k: int(v) for k, v in (snap.to_dict() or {}).items()}
        with self._ops_lock:
            for (d, op), n in self._ops.items():
                if d == day:
                    counts[op] = counts.get(op, 0) + n
        return counts

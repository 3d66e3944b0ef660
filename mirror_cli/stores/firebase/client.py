"""What every concern of the Firebase store shares: the Firestore and Cloud Storage clients,
credentials, per-call timeouts with bounded retry, keyset pagination, and operation counts
(kept in memory, flushed once per run to ``store_ops/{day}``).

Designed for what both real Firestore and the official emulator do: get/set/create, batched
writes with ``Increment``/``Maximum`` (whose results come back with the write), equality and
range filters on stored fields with ``order_by``/``limit``, cursors, and ``count()``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, StoreError
from ...models import Persona

if TYPE_CHECKING:
    from ...settings import Settings

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
    for extra in ("uid", "updated_at", "latest_rank", "shard", "next_window", "selected_avatar", "progress_anchor"):
        d.pop(extra, None)
    if d.get("timezone") is not None:
        from ...nightly import zone_problem

        # The app may write any IANA-shaped name (the rules cannot consult the zone database): an
        # unknown one counts as no zone (the configured default), so one profile never stops a tick.
        if zone_problem(d["timezone"]):
            d["timezone"] = None
    return Persona.model_validate(d)


def _credentials(settings: Settings, project: str | None) -> tuple[Any, str | None, str, Any]:
    """Credentials as Google's libraries expect them: a service-account key file when one is
    given, else Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS of any type,
    gcloud's user login, or the metadata server on Cloud Run / GCE). The emulators need none.
    Returns (firebase credential, project id, a description of the source, google-auth creds)."""
    import json

    from firebase_admin import credentials

    emulated = bool(os.environ.get("FIRESTORE_EMULATOR_HOST"))
    key = settings.firebase_credentials or (
        Path(p) if (p := os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")) else None
    )
    if key is not None:
        try:
            kind = json.loads(Path(key).read_text(encoding="utf-8")[:1_000_000]).get("type")
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"The credentials file {key} cannot be used: {exc}.",
                "Point GOOGLE_APPLICATION_CREDENTIALS (or --firebase-credentials) at a service-account "
                "key or an ADC file (gcloud auth application-default login), or unset it.",
            ) from exc
        if kind == "service_account":
            try:
                cert = credentials.Certificate(str(key))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"The service-account file {key} cannot be used: {exc}.",
                    "Download a service-account key (JSON) again, or use Application Default Credentials.",
                ) from exc
            return cert, project or cert.project_id, f"service-account key {key}", cert.get_credential()
        if settings.firebase_credentials is not None:
            # an ADC file named by flag: google.auth reads it from the environment variable
            os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(key)
    if key is None and emulated:
        return _EmulatorCredential(), project, "none (emulators)", None
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, adc_project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as exc:
        raise ConfigError(
            "No Firebase credentials: no key file and no Application Default Credentials.",
            "Set GOOGLE_APPLICATION_CREDENTIALS (or --firebase-credentials) to a service-account key, run "
            "`gcloud auth application-default login`, or run where a service account is attached "
            "(Cloud Run, GCE); FIRESTORE_EMULATOR_HOST for the emulator.",
        ) from exc
    kind = type(creds).__module__.rsplit(".", 1)[-1]
    source = f"Application Default Credentials ({kind}" + (f", {key})" if key else ")")
    return _AdcCredential(creds), project or adc_project, source, creds


try:
    from firebase_admin import credentials as _fa_credentials

    class _EmulatorCredential(_fa_credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> Any:
            return _anonymous()

    class _AdcCredential(_fa_credentials.Base):  # type: ignore[misc]
        """Firebase's wrapper around google-auth credentials found by google.auth.default()."""

        def __init__(self, creds: Any) -> None:
            self._creds = creds

        def get_credential(self) -> Any:
            return self._creds

except ModuleNotFoundError:  # the firebase extra is not installed: FirebaseClient says so
    pass


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


class FirebaseClient:
    """The clients, credentials, deadlines and operation counts every concern shares."""

    name = "firebase"

    def __init__(self, settings: Settings) -> None:
        try:
            import firebase_admin
            from firebase_admin import firestore
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "The firebase store needs the firebase-admin package, which is not installed.",
                "firebase-admin is a dependency of mirror: reinstall it "
                "(pip install --force-reinstall mirror-realm-avatars).",
            ) from exc
        self.settings = settings
        project = (
            settings.firebase_project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        )
        cred, project, self.credential_source, self._google_creds = _credentials(settings, project)
        if not project:
            raise ConfigError(
                "No Firebase project id.",
                "Pass --firebase-project or set MIRROR_FIREBASE_PROJECT (or GOOGLE_CLOUD_PROJECT).",
            )
        if not settings.firebase_bucket:
            raise ConfigError("No Cloud Storage bucket.", "Pass --firebase-bucket or set MIRROR_FIREBASE_BUCKET.")
        self.project = project
        self.bucket_name = settings.firebase_bucket
        app_name = f"mirror-{uuid.uuid4().hex[:8]}"
        options = {"projectId": project, "storageBucket": self.bucket_name}
        self._app = firebase_admin.initialize_app(cred, options, name=app_name)
        self.db = firestore.client(self._app)
        self._bucket: Any = None
        from google.api_core.retry import Retry
        from google.cloud.storage.retry import DEFAULT_RETRY

        # Every Firestore and Cloud Storage call gives up after store_timeout_s (retrying
        # transient errors until then), so a stalled or unreachable store stops a run in
        # seconds with a StoreError (exit 8, resumable), never a hang.
        timeout = settings.store_timeout_s
        self._rt: dict[str, Any] = {"retry": Retry(initial=0.1, maximum=2.0, timeout=timeout), "timeout": timeout}
        self._gcs: dict[str, Any] = {"retry": DEFAULT_RETRY.with_timeout(timeout), "timeout": timeout}
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

    @contextlib.contextmanager
    def _rpc(self, what: str, op: str | None = None) -> Iterator[None]:
        """One call to Firebase: any failure becomes a user-worded StoreError naming ``what``
        (``_wrap``); once it succeeds, one ``op`` ("reads", "writes", "deletes") is counted."""
        try:
            yield
        except Exception as exc:
            raise _wrap(exc, what) from exc
        if op is not None:
            self._count(op)

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

        if self._app is None:
            return  # closed already
        # Counting must never break a run that already finished.
        with contextlib.suppress(Exception):
            self.flush_ops()
        firebase_admin.delete_app(self._app)
        self._app = None

    # Every query the store runs passes through ``_record``: when a list is set here (a test does),
    # the queries are appended to it, so the composite indexes they need can be derived from them
    # and checked against firestore.indexes.json (the emulator does not enforce indexes).
    query_log: list[Any] | None = None
    _erasure_key: bytes | None = None  # the pseudonym key, once read (stores/firebase/forget.py)

    def _record(self, query: Any) -> Any:
        log = FirebaseClient.query_log
        if log is not None:
            log.append(query)
        return query

    def _keyset(
        self, query: Any, field: str, what: str, start: str = "", inclusive: bool = False, page_size: int = PAGE
    ) -> Iterator[Any]:
        """Every document of ``query`` in ``field`` order, a page at a time, by keyset on a stored
        field (the emulator ignores cursors and offsets; keysets are cheap on Firestore too)."""
        from google.cloud.firestore import FieldFilter

        last, first = start, True
        while True:
            page = query.where(filter=FieldFilter(field, ">=" if first and inclusive else ">", last))
            with self._rpc(what):
                docs = list(self._record(page.order_by(field).limit(page_size)).stream(**self._rt))
            self._count("reads", max(1, len(docs)))
            yield from docs
            if len(docs) < page_size:
                return
            last, first = docs[-1].get(field), False

    def _users(self) -> Any:
        return self.db.collection("users")

    # --------------------------------------------------------------------------- accounting
    def op_counts(self, day: str) -> dict[str, int]:
        with self._rpc("reading operation counts"):
            snap = self.db.collection("store_ops").document(day).get(**self._rt)
        counts = {k: int(v) for k, v in (snap.to_dict() or {}).items()}
        with self._ops_lock:
            for (d, op), n in self._ops.items():
                if d == day:
                    counts[op] = counts.get(op, 0) + n
        return counts

"""The store contract and its registry. One contract test suite runs against every store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import ValidationError

from ..errors import NotFoundError, UsageError
from ..models import AvatarRecord, LedgerEvent, Persona, Progress
from ..registry import Registry
from .rates import RateTaken
from .reports import ReportStore

if TYPE_CHECKING:
    from ..settings import Settings


# Users are spread over this many shard buckets (a stored field); a shard i/N of a nightly run
# owns a contiguous range of buckets and queries only that range.
SHARD_BUCKETS = 4096
# The due index's format; a store below it is re-indexed by the next due run (a fresh store
# starts at it: the local store's migration 2 writes it when there are no users yet).
# 2: every user carries ``next_window`` (see DueQuery.opens_by).
DUE_INDEX_VERSION = 2


def shard_bucket(uid: str) -> int:
    """The user's stable shard bucket, the same in every process and store."""
    return int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") % SHARD_BUCKETS


@dataclass(frozen=True)
class DueQuery:
    """Users whose latest stage avatar has rank ``latest_rank`` (-1: none yet) and whose
    ``progress.active_days`` (written by the app) reached ``min_active_days``, the threshold of
    the next stage."""

    latest_rank: int
    min_active_days: int
    # Only users whose stored ``next_window`` (epoch seconds, UTC: when the nightly window they are
    # next to be served in opens; 0 for a user no tick has looked at yet) is at or before this.
    # None: at any hour.
    opens_by: int | None = None


@dataclass(frozen=True)
class CacheEntry:
    user_id: str
    request_key: str
    avatar_id: str
    created_at: datetime


@dataclass(frozen=True)
class Caps:
    """The caps a reservation must fit under (None = no cap)."""

    per_user_daily: int | None
    system_daily: int | None
    monthly_budget_usd: float | None


@dataclass(frozen=True)
class Reservation:
    id: str
    user_id: str
    amount: float
    day: str
    month: str


class LimitReached(Exception):
    """A reservation was refused: ``kind`` is per_user_daily, system_daily, monthly_budget or run_budget."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


JobStateName = Literal["pending", "in_flight", "done", "failed", "degraded", "skipped"]


@dataclass(frozen=True)
class UnreadableProfile:
    """A stored profile that does not validate (bad data written by a client, or an old shape):
    its user is skipped, named with the reason, and every other user is served."""

    uid: str
    reason: str


def read_profile(uid: str, load: Callable[[], Persona]) -> Persona | UnreadableProfile:
    """``load()``, or what is wrong with the stored profile (the first invalid field, named)."""
    try:
        return load()
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "profile"
        return UnreadableProfile(uid, f"profile does not validate: {where}: {err['msg']}")
    except ValueError as exc:  # not JSON at all
        return UnreadableProfile(uid, f"profile does not validate: {str(exc)[:200]}")


def missing_image(ref: str) -> NotFoundError:
    """An image the store has no object for (deleted by hand, or lost): the job that needed it
    fails, named; the store itself is fine and the run goes on."""
    return NotFoundError(
        f"The image {ref} is missing from the store.",
        "Regenerate the avatar it belongs to (mirror generate --user U --stage S --regenerate), or remove its record.",
    )


def profile_or_error(uid: str, load: Callable[[], Persona]) -> Persona:
    """One user's profile, or a user-worded error naming them (a command about that user)."""
    got = read_profile(uid, load)
    if isinstance(got, UnreadableProfile):
        raise UsageError(
            f"User {uid}: the stored {got.reason}.",
            "Fix the profile (mirror users import, or the app's next write); other users are unaffected.",
        )
    return got


@dataclass
class RunInfo:
    id: str
    command: str
    created_at: datetime
    state: str = "running"  # running | finished | stopped | submitted
    params: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored form, the same in every store."""
        return {
            "id": self.id,
            "command": self.command,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "state": self.state,
            "params": self.params,
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunInfo:
        return cls(d["id"], d["command"], datetime.fromisoformat(d["created_at"]), d["state"], d["params"], d["counts"])


@dataclass
class JobState:
    run_id: str
    job_id: str
    user_id: str
    target: str
    state: JobStateName
    request_key: str = ""
    avatar_id: str | None = None
    detail: str | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (without run_id, the key it is stored under), the same in every store."""
        return {
            "job_id": self.job_id,
            "user_id": self.user_id,
            "target": self.target,
            "state": self.state,
            "request_key": self.request_key,
            "avatar_id": self.avatar_id,
            "detail": self.detail,
            "updated_at": (self.updated_at or datetime.now(UTC)).astimezone(UTC).isoformat(),
        }

    @classmethod
    def from_dict(cls, run_id: str, d: dict[str, Any]) -> JobState:
        return cls(
            run_id,
            d["job_id"],
            d["user_id"],
            d["target"],
            d["state"],
            d["request_key"],
            d["avatar_id"],
            d["detail"],
            datetime.fromisoformat(d["updated_at"]),
        )


@dataclass
class Claim:
    """One request being bought: at most one owner (run + process) at a time, for a lease that
    the owner renews while the request is in flight. It is deleted once the job is settled, after
    its result is stored and cached, so a process that waited finds the result in the cache."""

    key: str  # "<user>/<request key>"
    owner: str
    lease_until: datetime
    created_at: datetime
    info: dict[str, Any] = field(default_factory=dict)  # run_id, estimate_usd, reservation, ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "owner": self.owner,
            "lease_until": self.lease_until.astimezone(UTC).isoformat(),
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        return cls(
            d["key"],
            d["owner"],
            datetime.fromisoformat(d["lease_until"]),
            datetime.fromisoformat(d["created_at"]),
            d.get("info") or {},
        )


@dataclass
class ClaimResult:
    acquired: bool
    current: Claim | None  # the claim now in the store (ours when acquired)
    previous: Claim | None = None  # an expired (or dead owner's) claim we took over


ReviewKind = Literal["fallback", "avatar"]
ReviewState = Literal["draft", "approved", "rejected"]
REVIEW_STATES: tuple[ReviewState, ...] = ("draft", "approved", "rejected")
REVIEW_HISTORY = 20  # decisions kept per asset (older ones drop off)


@dataclass
class Review:
    """A person's decision on one image: a fallback asset (key ``<style>/<target>/<variant>``)
    or a flagged avatar (key ``<uid>/<avatar id>``). The decision is about the image whose hash
    is ``sha256``: once the asset's image changes it no longer applies (see mirror_cli.review)."""

    kind: ReviewKind
    key: str
    state: ReviewState
    sha256: str
    by: str | None = None
    at: datetime | None = None
    note: str = ""
    approved_sha256: str | None = None  # the last approved image, kept across re-renders
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The stored form, the same in every store."""
        return {
            "kind": self.kind,
            "key": self.key,
            "state": self.state,
            "sha256": self.sha256,
            "by": self.by,
            "at": self.at.astimezone(UTC).isoformat() if self.at else None,
            "note": self.note,
            "approved_sha256": self.approved_sha256,
            "history": self.history[-REVIEW_HISTORY:],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Review:
        at = d.get("at")
        return cls(
            d["kind"],
            d["key"],
            d["state"],
            d["sha256"],
            d.get("by"),
            datetime.fromisoformat(at) if at else None,
            d.get("note") or "",
            d.get("approved_sha256"),
            list(d.get("history") or []),
        )


@dataclass(frozen=True)
class Selection:
    """The avatar a user chose to show in the app's timeline."""

    user_id: str
    avatar_id: str
    stage: str  # the avatar's stage (what usage counts by)
    target: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "avatar_id": self.avatar_id,
            "stage": self.stage,
            "target": self.target,
            "selected_at": self.at.astimezone(UTC).isoformat(),
        }

    @classmethod
    def from_dict(cls, uid: str, d: dict[str, Any]) -> Selection:
        at = d["selected_at"]
        when = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        return cls(uid, d["avatar_id"], d.get("stage") or "", d.get("target") or "", when)


# One Protocol per concern. A back-end implements them all (``Store``); code that needs only one
# concern can say so in its signature.


@runtime_checkable
class ProfileStore(Protocol):
    """Users and the progress the app reports for them."""

    def iter_user_ids(self, page_size: int = 500) -> Iterator[str]: ...
    def get_user(self, uid: str) -> Persona | None: ...
    def put_user(self, persona: Persona) -> None: ...
    def set_progress(self, uid: str, progress: Progress) -> None: ...

    # The due index: what makes a user due, in a queryable form (see DueQuery).
    def due_users(
        self, queries: list[DueQuery], buckets: tuple[int, int] = (0, SHARD_BUCKETS), page_size: int = 500
    ) -> Iterator[tuple[Persona | UnreadableProfile, int]]:
        """Every user matching one of ``queries`` whose bucket is in [lo, hi), with their latest
        stage rank; a profile that does not validate comes as an UnreadableProfile (never raised:
        one user's bad data never stops the others)."""
        ...

    def raise_latest_rank(self, uid: str, rank: int) -> None:
        """Record that the user has a stage avatar of ``rank`` (the stored rank only grows)."""
        ...

    def set_next_window(self, uid: str, opens_at: int) -> None:
        """Store when the nightly window the user is next to be served in opens (epoch seconds,
        computed by mirror_cli.nightly with the user's zone rules); a missing user is ignored."""
        ...

    def due_index_version(self) -> int: ...
    def set_due_index_version(self, version: int) -> None: ...


@runtime_checkable
class AvatarStore(Protocol):
    """Image files (private, served by signed URLs) and the avatar records that point at them."""

    def put_image(self, uid: str, name: str, data: bytes, thumb: bytes | None) -> tuple[str, str | None]: ...
    def read_image(self, ref: str) -> bytes: ...
    def image_url(self, ref: str) -> str: ...
    def delete_image(self, ref: str) -> None: ...
    def image_size(self, ref: str) -> int: ...
    def put_avatar(self, record: AvatarRecord) -> bool: ...
    def get_avatar(self, uid: str, avatar_id: str) -> AvatarRecord | None: ...
    def list_avatars(self, uid: str) -> list[AvatarRecord]: ...
    def latest_avatar(self, uid: str, target: str, statuses: tuple[str, ...]) -> AvatarRecord | None:
        """The user's newest avatar of ``target`` whose status is one of ``statuses`` (ties: the
        greatest id), read with one indexed query that returns at most one record: the cached
        answer of the server reads this instead of listing every avatar."""
        ...

    def delete_avatar(self, uid: str, avatar_id: str) -> None: ...


@runtime_checkable
class CacheStore(Protocol):
    """Exact-repeat cache: (user, request key) -> avatar id."""

    def cache_get(self, uid: str, request_key: str) -> CacheEntry | None: ...
    def cache_put(self, entry: CacheEntry) -> None: ...
    def cache_entries(self, uid: str | None = None) -> list[CacheEntry]: ...
    def cache_delete(self, uid: str, request_key: str) -> None: ...


@runtime_checkable
class LedgerStore(Protocol):
    """The usage ledger, and the store's own operation counts (kept in memory, flushed once)."""

    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool: ...
    def events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> list[LedgerEvent]: ...
    def iter_events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> Iterator[LedgerEvent]:
        """The same events as ``events``, a page at a time (memory flat in the ledger's size)."""
        ...

    def month_paid_usd(self, month: str, uid: str | None = None) -> float:
        """What paid images cost in month YYYY-MM (SQL sum / the month's counters)."""
        ...

    def op_counts(self, day: str) -> dict[str, int]: ...
    def flush_ops(self) -> None: ...


@runtime_checkable
class LimitStore(Protocol):
    """Budget reservations that hold every cap, and rates (``rates.gcra``), across processes."""

    def reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation: ...
    def settle(self, reservation: Reservation, actual: float, *, only_held: bool = False) -> None:
        """Settle to ``actual``. ``only_held``: only if it is still held (a crashed owner's
        reservation, which that owner may have settled before it died: never counted twice)."""
        ...

    def release(self, reservation: Reservation, *, only_held: bool = False) -> None: ...
    def take_rate(self, bucket: str, interval_s: float, burst: int, max_wait_s: float, now: float) -> RateTaken: ...


@runtime_checkable
class RunStore(Protocol):
    """Runs, their jobs' states (and the claims that keep two processes off one job)."""

    def create_run(self, run: RunInfo) -> None: ...
    def update_run(self, run: RunInfo) -> None: ...
    def get_run(self, run_id: str) -> RunInfo | None: ...
    def list_runs(self, limit: int = 20) -> list[RunInfo]: ...
    def put_job_state(self, state: JobState) -> None: ...
    def job_states(self, run_id: str) -> list[JobState]: ...

    # claims: one request in flight at a time across processes, shards and overlapping runs
    def claim(self, claim: Claim, now: datetime, steal_from: str | None = None) -> ClaimResult:
        """Atomically create ``claim``; or take over an existing one whose lease ended before
        ``now`` (or whose owner is ``steal_from``, known dead). Otherwise acquire nothing."""
        ...

    def renew_claim(self, key: str, owner: str, lease_until: datetime, info: dict[str, Any] | None = None) -> bool: ...
    def get_claim(self, key: str) -> Claim | None: ...
    def release_claim(self, key: str, owner: str | None = None) -> None:
        """Delete the claim (if ``owner`` is given, only while it is still that owner's)."""
        ...


@runtime_checkable
class ReviewStore(Protocol):
    """Designers' decisions on fallback assets and flagged avatars (one record per asset)."""

    def get_review(self, kind: ReviewKind, key: str) -> Review | None: ...
    def put_review(self, review: Review) -> None: ...
    def list_reviews(self, kind: ReviewKind, prefix: str = "") -> list[Review]:
        """Every review of ``kind`` whose key starts with ``prefix``, ordered by key."""
        ...

    def delete_review(self, kind: ReviewKind, key: str) -> None: ...


@dataclass
class AppJob:
    """A request of the app that outlived its answer (a 202): its state lives in the store so any
    instance answers its poll, and an instance that finds its lease run out takes it over."""

    id: str
    owner: str  # the uid it acts for: only they (or an admin) may poll it
    kind: str  # generate | evolve | trilogy
    key: str  # what it makes: identical requests share a job
    params: dict[str, Any]  # what another instance needs to run it again
    instance: str  # who runs it now
    lease_until: datetime  # renewed while it runs; past it, a poll on another instance takes it over
    created_at: datetime
    state: Literal["running", "done"] = "running"
    status: int | None = None  # the finished answer: HTTP status, body and headers
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "kind": self.kind,
            "key": self.key,
            "params": self.params,
            "instance": self.instance,
            "lease_until": self.lease_until.astimezone(UTC).isoformat(),
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "state": self.state,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AppJob:
        return cls(
            d["id"],
            d["owner"],
            d["kind"],
            d["key"],
            d.get("params") or {},
            d["instance"],
            datetime.fromisoformat(d["lease_until"]),
            datetime.fromisoformat(d["created_at"]),
            d["state"],
            d.get("status"),
            d.get("body"),
            d.get("headers") or {},
        )


class AppJobStore(Protocol):
    """The app's slow requests (answered 202), readable by every instance."""

    def put_app_job(self, job: AppJob) -> None: ...
    def get_app_job(self, job_id: str) -> AppJob | None: ...


@runtime_checkable
class SelectionStore(Protocol):
    """The avatar each user shows, and every choice made, counted per stage for usage."""

    def put_selection(self, selection: Selection) -> None:
        """Record the user's current choice and one selection event."""
        ...

    def get_selection(self, uid: str) -> Selection | None: ...
    def selection_counts(self, since: datetime, until: datetime, uid: str | None = None) -> dict[str, int]:
        """Selections made in [since, until), per stage."""
        ...


@runtime_checkable
class ErasureStore(Protocol):
    """Forgetting one user (mirror_cli/erasure.py): a tombstone keyed by a pseudonym, then one
    deletion per concern, each idempotent and returning how many rows/documents it removed.
    Spend stays: the ledger's events are re-keyed to the pseudonym, never deleted. Once the
    tombstone exists, the store refuses every write that would store the user again
    (errors.UserErasedError). ``put_tombstone`` also marks the erasure as under way until
    ``finish_erasure``; ``pending_erasures`` lists the users whose erasure a crash left half-done
    (the nightly run finishes them); ``batch_runs`` are the runs with ``params.via ==
    "batch-api"``, whose records hold the files uploaded to OpenAI."""

    def pseudonym(self, uid: str) -> str:
        """``erased-`` + a keyed hash (HMAC-SHA256) of the uid; the key is kept in the store."""
        ...

    def put_tombstone(self, uid: str, at: datetime) -> None: ...
    def is_erased(self, uid: str) -> bool: ...
    def finish_erasure(self, uid: str) -> None: ...
    def pending_erasures(self, limit: int) -> list[str]: ...
    def batch_runs(self) -> list[RunInfo]: ...
    def forget_app_jobs(self, uid: str) -> int: ...
    def forget_queued(self, uid: str) -> int: ...
    def forget_claims(self, uid: str) -> int: ...
    def forget_run_jobs(self, uid: str) -> int: ...
    def forget_cache(self, uid: str) -> int: ...
    def forget_selections(self, uid: str) -> int: ...
    def forget_reviews(self, uid: str) -> int: ...
    def forget_reservations(self, uid: str) -> int: ...
    def forget_reports(self, uid: str) -> int: ...
    def forget_avatars(self, uid: str) -> int: ...
    def pseudonymise_ledger(self, uid: str, alias: str) -> int: ...
    def forget_profile(self, uid: str) -> int: ...


@runtime_checkable
class Store(
    ProfileStore,
    AvatarStore,
    CacheStore,
    LedgerStore,
    LimitStore,
    RunStore,
    ReviewStore,
    SelectionStore,
    AppJobStore,
    ReportStore,
    Protocol,
):
    """A whole back-end. Its methods block: async code calls them through ``StoreCalls``."""

    name: str

    def close(self) -> None: ...


StoreFactory = Callable[["Settings"], Store]
_STORES: Registry[StoreFactory] = Registry(
    "store",
    {
        "local": "mirror_cli.stores.local:LocalStore",
        "firebase": "mirror_cli.stores.firebase:FirebaseStore",
    },
    group="mirror.stores",
    missing_hint="firebase-admin is a dependency of mirror: reinstall it "
    "(pip install --force-reinstall mirror-realm-avatars).",
)


def register_store(name: str, factory: StoreFactory) -> None:
    _STORES.register(name, factory)


def known_stores() -> list[str]:
    return _STORES.names()


def get_store(name: str, settings: Settings) -> Store:
    return _STORES.factory(name)(settings)

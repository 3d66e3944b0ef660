"""The store contract and its registry. One contract test suite runs against every store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..errors import ConfigError
from ..models import AvatarRecord, LedgerEvent, Persona, Progress

if TYPE_CHECKING:
    from ..settings import Settings


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


JobStateName = Literal["pending", "in_flight", "done", "failed", "degraded"]


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


@runtime_checkable
class Store(Protocol):
    name: str

    # users ---------------------------------------------------------------------------------
    def iter_user_ids(self, page_size: int = 500) -> Iterator[str]: ...
    def get_user(self, uid: str) -> Persona | None: ...
    def put_user(self, persona: Persona) -> None: ...
    def set_progress(self, uid: str, progress: Progress) -> None: ...

    # images --------------------------------------------------------------------------------
    def put_image(self, uid: str, name: str, data: bytes, thumb: bytes | None) -> tuple[str, str | None]: ...
    def read_image(self, ref: str) -> bytes: ...
    def image_url(self, ref: str) -> str: ...
    def delete_image(self, ref: str) -> None: ...
    def image_size(self, ref: str) -> int: ...

    # avatars -------------------------------------------------------------------------------
    def put_avatar(self, record: AvatarRecord) -> bool: ...
    def get_avatar(self, uid: str, avatar_id: str) -> AvatarRecord | None: ...
    def list_avatars(self, uid: str) -> list[AvatarRecord]: ...
    def delete_avatar(self, uid: str, avatar_id: str) -> None: ...

    # cache ---------------------------------------------------------------------------------
    def cache_get(self, uid: str, request_key: str) -> CacheEntry | None: ...
    def cache_put(self, entry: CacheEntry) -> None: ...
    def cache_entries(self, uid: str | None = None) -> list[CacheEntry]: ...
    def cache_delete(self, uid: str, request_key: str) -> None: ...

    # ledger and limits ---------------------------------------------------------------------
    def record_event(self, event: LedgerEvent, event_id: str | None = None) -> bool: ...
    def events(
        self, since: datetime | None = None, until: datetime | None = None, uid: str | None = None
    ) -> list[LedgerEvent]: ...
    def reserve(self, uid: str, request_key: str, amount: float, now: datetime, caps: Caps) -> Reservation: ...
    def settle(self, reservation: Reservation, actual: float) -> None: ...
    def release(self, reservation: Reservation) -> None: ...

    # runs ----------------------------------------------------------------------------------
    def create_run(self, run: RunInfo) -> None: ...
    def update_run(self, run: RunInfo) -> None: ...
    def get_run(self, run_id: str) -> RunInfo | None: ...
    def list_runs(self, limit: int = 20) -> list[RunInfo]: ...
    def put_job_state(self, state: JobState) -> None: ...
    def job_states(self, run_id: str) -> list[JobState]: ...

    # accounting ----------------------------------------------------------------------------
    def op_counts(self, day: str) -> dict[str, int]: ...

    def close(self) -> None: ...


StoreFactory = Callable[["Settings"], Store]
_BUILTIN = {
    "local": "mirror_cli.stores.local:LocalStore",
    "firebase": "mirror_cli.stores.firebase:FirebaseStore",
}
_REGISTRY: dict[str, StoreFactory] = {}


def register_store(name: str, factory: StoreFactory) -> None:
    _REGISTRY[name] = factory


def known_stores() -> list[str]:
    return sorted({*_BUILTIN, *_REGISTRY})


def get_store(name: str, settings: Settings) -> Store:
    if name in _REGISTRY:
        return _REGISTRY[name](settings)
    if name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        try:
            factory: StoreFactory = getattr(import_module(module), attr)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"The {name!r} store needs a package that is not installed ({exc.name}).",
                "Install it with: pip install 'mirror-cli[firebase]'.",
            ) from exc
        return factory(settings)
    raise ConfigError(f"Unknown store {name!r}.", f"Use one of: {', '.join(known_stores())}.")

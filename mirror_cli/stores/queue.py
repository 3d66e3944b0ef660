"""The job queue: one Protocol, one registry of back-ends (the embedded SQLite queue, Pub/Sub)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass
class QueueMessage:
    """One job on the queue: ``body`` says what to make, ``attributes`` carry its request key."""

    id: str
    ordering_key: str  # the user: one user's jobs are delivered in order, one at a time
    attributes: dict[str, str]
    body: dict[str, Any]
    attempts: int = 0  # deliveries so far, this one included
    receipt: str = ""  # the back-end's handle of this delivery (Pub/Sub's ack id)


class JobQueue(Protocol):
    """An at-least-once job queue (Pub/Sub semantics): a pulled message is invisible until its
    ack deadline, acked only once its avatar is stored, redelivered otherwise, and set aside
    (dead-lettered) after ``max_attempts`` deliveries. Redelivery is safe: the store's claims,
    spool and cache keep paid work paid once."""

    name: str

    def publish(self, body: dict[str, Any], ordering_key: str, attributes: dict[str, str]) -> str: ...
    def pull(self, max_messages: int, ack_deadline_s: float) -> list[QueueMessage]: ...
    def ack(self, message: QueueMessage) -> None: ...
    def nack(self, message: QueueMessage, delay_s: float = 0.0) -> None:
        """Give the message back, to be delivered again after ``delay_s`` (a retry backoff)."""
        ...

    def dead_letters(self) -> list[QueueMessage]: ...
    def close(self) -> None: ...


QueueFactory = Callable[["Settings"], JobQueue]
_QUEUES: Registry[QueueFactory] = Registry(
    "queue",
    {"local": "mirror_cli.stores.local.queue:SqliteQueue", "pubsub": "mirror_cli.stores.firebase.queue:PubSubQueue"},
    group="mirror.queues",
    missing_hint="The pubsub queue needs google-cloud-pubsub: pip install 'mirror-realm-avatars[serve]'.",
)


def get_queue(name: str, settings: Settings) -> JobQueue:
    return _QUEUES.factory(name)(settings)

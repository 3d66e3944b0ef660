"""The production job queue: Google Cloud Pub/Sub (google-cloud-pubsub; PUBSUB_EMULATOR_HOST
points it at the official emulator). One topic (settings.pubsub_topic) with message ordering,
one pull subscription ``<topic>-workers`` whose dead-letter policy sets a job aside on
``<topic>-dead`` after queue_max_attempts deliveries. The topic and subscriptions are created
when missing (in production, create them with the same names in Terraform or gcloud)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, StoreError
from ..queue import QueueMessage

if TYPE_CHECKING:
    from ...settings import Settings

PULL_WAIT_S = 2.0
MAX_DEADLINE_S = 600


class PubSubQueue:
    name = "pubsub"

    def __init__(self, settings: Settings) -> None:
        try:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined,unused-ignore]
        except ImportError as exc:
            raise ConfigError(
                "The pubsub queue needs google-cloud-pubsub.", "pip install 'mirror-realm-avatars[serve]'."
            ) from exc
        import os

        project = settings.firebase_project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ConfigError(
                "The pubsub queue needs a project.", "Set MIRROR_FIREBASE_PROJECT (or GOOGLE_CLOUD_PROJECT)."
            )
        self.max_attempts = settings.queue_max_attempts
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        self.publisher = pubsub_v1.PublisherClient(publisher_options=options)
        self.subscriber = pubsub_v1.SubscriberClient()
        self.topic = self.publisher.topic_path(project, settings.pubsub_topic)
        self.dead_topic = self.publisher.topic_path(project, f"{settings.pubsub_topic}-dead")
        self.subscription = self.subscriber.subscription_path(project, f"{settings.pubsub_topic}-workers")
        self.dead_subscription = self.subscriber.subscription_path(project, f"{settings.pubsub_topic}-dead")
        self._ensure()

    def _ensure(self) -> None:
        from google.api_core.exceptions import AlreadyExists

        for topic in (self.topic, self.dead_topic):
            with contextlib.suppress(AlreadyExists):
                self.publisher.create_topic(request={"name": topic})
        subscriptions: list[dict[str, Any]] = [
            {
                "name": self.subscription,
                "topic": self.topic,
                "ack_deadline_seconds": 60,
                "enable_message_ordering": True,
                "dead_letter_policy": {
                    "dead_letter_topic": self.dead_topic,
                    "max_delivery_attempts": self.max_attempts,
                },
            },
            {"name": self.dead_subscription, "topic": self.dead_topic},
        ]
        for request in subscriptions:
            with contextlib.suppress(AlreadyExists):
                self.subscriber.create_subscription(request=request)

    def publish(self, body: dict[str, Any], ordering_key: str, attributes: dict[str, str]) -> str:
        try:
            future = self.publisher.publish(
                self.topic, json.dumps(body).encode(), ordering_key=ordering_key, **attributes
            )
            return str(future.result(timeout=60))
        except Exception as exc:
            self.publisher.resume_publish(self.topic, ordering_key)  # a failed key is paused until resumed
            raise StoreError(f"Publishing a job failed: {type(exc).__name__}.", "Check Pub/Sub and retry.") from exc

    def _pull(self, subscription: str, max_messages: int) -> list[Any]:
        from google.api_core.exceptions import DeadlineExceeded

        try:
            answer = self.subscriber.pull(
                request={"subscription": subscription, "max_messages": max_messages}, timeout=PULL_WAIT_S
            )
        except DeadlineExceeded:
            return []
        return list(answer.received_messages)

    def pull(self, max_messages: int, ack_deadline_s: float) -> list[QueueMessage]:
        received = self._pull(self.subscription, max_messages)
        if received:
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription,
                    "ack_ids": [r.ack_id for r in received],
                    "ack_deadline_seconds": int(min(MAX_DEADLINE_S, max(10, ack_deadline_s))),
                }
            )
        return [_message(r) for r in received]

    def ack(self, message: QueueMessage) -> None:
        self.subscriber.acknowledge(request={"subscription": self.subscription, "ack_ids": [message.receipt]})

    def nack(self, message: QueueMessage, delay_s: float = 0.0) -> None:
        self.subscriber.modify_ack_deadline(
            request={
                "subscription": self.subscription,
                "ack_ids": [message.receipt],
                "ack_deadline_seconds": int(min(MAX_DEADLINE_S, max(0, delay_s))),
            }
        )

    def dead_letters(self) -> list[QueueMessage]:
        """What the dead-letter subscription holds now (left there, not acked: for a person)."""
        return [_message(r) for r in self._pull(self.dead_subscription, 100)]

    def close(self) -> None:
        self.subscriber.close()


def _message(r: Any) -> QueueMessage:
    m = r.message
    return QueueMessage(
        id=m.message_id,
        ordering_key=m.ordering_key,
        attributes=dict(m.attributes),
        body=json.loads(m.data.decode()),
        attempts=max(1, int(r.delivery_attempt or 0)),
        receipt=r.ack_id,
    )

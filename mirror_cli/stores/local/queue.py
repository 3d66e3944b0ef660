"""The embedded job queue: Pub/Sub's semantics on the store's SQLite file, so one machine needs
nothing else. A pull takes the oldest ready message of each user whose earlier messages are all
acked (ordering key = user), hides it until its ack deadline and counts the delivery; a message
delivered ``max_attempts`` times without an ack is dead-lettered instead of delivered again."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..queue import QueueMessage
from .db import LocalDb

if TYPE_CHECKING:
    from ...settings import Settings

DEFAULT_MAX_ATTEMPTS = 5


class SqliteQueue(LocalDb):
    name = "local"

    def __init__(
        self,
        settings: Settings | None = None,
        root: Path | None = None,
        max_attempts: int | None = None,
        clock: Any = time.time,
    ) -> None:
        super().__init__(settings, root)
        self.max_attempts = max_attempts or (settings.queue_max_attempts if settings else DEFAULT_MAX_ATTEMPTS)
        self.clock = clock

    def publish(self, body: dict[str, Any], ordering_key: str, attributes: dict[str, str]) -> str:
        message_id = uuid.uuid4().hex
        self._q(
            "INSERT INTO queue(id, ordering_key, attributes, body) VALUES (?, ?, ?, ?)",
            (message_id, ordering_key, json.dumps(attributes), json.dumps(body)),
            op="writes",
        )
        return message_id

    def pull(self, max_messages: int, ack_deadline_s: float) -> list[QueueMessage]:
        now = self.clock()
        out: list[QueueMessage] = []
        with self.transaction() as db:
            # the head of each user's line: the oldest message not yet acked or dead-lettered
            # (a head in flight is not visible: that user's later messages wait behind it)
            rows = db.execute(
                "SELECT seq, id, ordering_key, attributes, body, attempts FROM queue q "
                "WHERE state = 'ready' AND visible_at <= ? AND seq = (SELECT MIN(seq) FROM queue "
                "WHERE ordering_key = q.ordering_key AND state = 'ready') ORDER BY seq LIMIT ?",
                (now, max_messages * 4),
            ).fetchall()
            for seq, mid, key, attrs, body, attempts in rows:
                if attempts >= self.max_attempts:
                    db.execute("UPDATE queue SET state = 'dead' WHERE seq = ?", (seq,))
                    continue
                db.execute(
                    "UPDATE queue SET attempts = attempts + 1, visible_at = ? WHERE seq = ?",
                    (now + ack_deadline_s, seq),
                )
                out.append(QueueMessage(mid, key, json.loads(attrs), json.loads(body), attempts + 1))
                if len(out) >= max_messages:
                    break
        self._count("writes", max(1, len(out)))
        return out

    def ack(self, message: QueueMessage) -> None:
        self._q("UPDATE queue SET state = 'acked' WHERE id = ? AND state = 'ready'", (message.id,), op="writes")

    def nack(self, message: QueueMessage, delay_s: float = 0.0) -> None:
        self._q(
            "UPDATE queue SET visible_at = ? WHERE id = ? AND state = 'ready'",
            (self.clock() + delay_s, message.id),
            op="writes",
        )

    def dead_letters(self) -> list[QueueMessage]:
        rows = self._q("SELECT id, ordering_key, attributes, body, attempts FROM queue WHERE state = 'dead'")
        return [QueueMessage(m, k, json.loads(a), json.loads(b), n) for m, k, a, b, n in rows]

    def pending(self) -> int:
        rows = self._q("SELECT COUNT(*) FROM queue WHERE state = 'ready'")
        return int(rows[0][0]) if rows else 0

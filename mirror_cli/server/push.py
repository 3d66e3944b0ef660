"""Pub/Sub push delivery to the API service itself: ``POST /api/v1/queue/push``.

Pub/Sub posts each message (the push envelope: ``message.data`` base64, ``attributes``,
``messageId``, ``orderingKey``, ``deliveryAttempt``) with an OIDC token signed by Google for the
push subscription's service account. The endpoint runs the job within the request (Cloud Run
keeps the CPU while a request is open) through the same worker code as `mirror worker`, and
answers 204 (ack) once the job's answer is stored, 429 to be delivered again (Pub/Sub's retry
policy, then its dead-letter policy).

Fail closed: every push is refused while ``push_audience`` or ``push_account`` is unset; a token
must carry that audience, be issued by Google to that service account (verified email), and be
signed - except against the Pub/Sub emulator, which sends no token: unsigned tokens are accepted
then only under the same rule as the Auth emulator's (allowed explicitly, never in production,
the emulator on this machine).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from typing import TYPE_CHECKING, Any

from ..stores.queue import QueueMessage
from .auth import LOOPBACK, unauthorized
from .problems import ProblemError

if TYPE_CHECKING:
    from ..settings import Settings
    from ..worker import Worker
    from .service import Service

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


def _forbidden(detail: str, fix: str) -> ProblemError:
    return ProblemError(403, "push-refused", "Push refused", detail, fix)


def emulator_push_allowed(settings: Settings) -> bool:
    host = os.environ.get("PUBSUB_EMULATOR_HOST") or ""
    name = host.rsplit(":", 1)[0]
    return bool(host) and settings.auth_emulator and settings.environment != "production" and name in LOOPBACK


def _unsigned_claims(token: str) -> dict[str, Any]:
    try:
        header, payload, _ = token.split(".")
        head = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        raise unauthorized("The push token is not a JWT.", "Let Pub/Sub sign its push requests (OIDC).") from None
    if head.get("alg") != "none":
        raise unauthorized("The push token is not the emulator's.", "Use a token of the push subscription.")
    return claims


def _signed_claims(token: str, audience: str) -> dict[str, Any]:
    from google.auth.transport import requests
    from google.oauth2 import id_token

    try:
        claims: dict[str, Any] = id_token.verify_oauth2_token(  # type: ignore[no-untyped-call]
            token, requests.Request(), audience=audience
        )
    except Exception:
        raise unauthorized(
            "The push token is not a valid Google-signed OIDC token for this audience.",
            "Configure the push subscription's authentication with the service's push_audience.",
        ) from None
    return claims


def check_push_token(settings: Settings, authorization: str | None) -> None:
    """Raise 401/403 unless the request carries the push subscription's own OIDC token."""
    audience, account = settings.push_audience, settings.push_account
    if not audience or not account:
        raise _forbidden(
            "Push delivery is not configured on this service.",
            "Set push_audience and push_account (the push subscription's service account), or run "
            "`mirror worker` to pull.",
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("No push token.", "Enable authentication on the push subscription (OIDC token).")
    token = token.strip()
    claims = _unsigned_claims(token) if emulator_push_allowed(settings) else _signed_claims(token, audience)
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= time.time():
        raise unauthorized("The push token has expired.", "Pub/Sub sends a fresh token with every push.")
    if claims.get("aud") != audience or claims.get("iss") not in GOOGLE_ISSUERS:
        raise unauthorized("The push token is for another audience.", "Set push_audience to the subscription's.")
    if claims.get("email") != account or claims.get("email_verified") is not True:
        raise _forbidden(
            "The push token is not the push subscription's service account.",
            "Set push_account to the service account the push subscription signs with.",
        )


def message_of(envelope: dict[str, Any]) -> QueueMessage:
    """The QueueMessage of a push envelope (422 when it is not one)."""
    raw = envelope.get("message")
    bad = ProblemError(
        422, "bad-push", "Not a push envelope", "The body is not a Pub/Sub push message.", "Send what Pub/Sub sends."
    )
    if not isinstance(raw, dict):
        raise bad
    try:
        body = json.loads(base64.b64decode(str(raw.get("data", "")), validate=True))
    except (ValueError, binascii.Error):
        raise bad from None
    attributes = raw.get("attributes") or {}
    if not isinstance(body, dict) or not isinstance(attributes, dict):
        raise bad
    attempt = envelope.get("deliveryAttempt")
    return QueueMessage(
        id=str(raw.get("messageId") or raw.get("message_id") or ""),
        ordering_key=str(raw.get("orderingKey") or raw.get("ordering_key") or ""),
        attributes={str(k): str(v) for k, v in attributes.items()},
        body=body,
        attempts=attempt if isinstance(attempt, int) and attempt > 0 else 1,
    )


class PushRunner:
    """The worker code behind the push endpoint (made on the first push: the queue's client)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._worker: Worker | None = None
        self._lock = asyncio.Lock()

    async def run(self, message: QueueMessage) -> float | None:
        async with self._lock:
            if self._worker is None:
                from ..worker import Worker
                from .queued import APP_JOB

                core = self.svc.core
                queue = await core.store_calls(lambda: core.queue)
                self._worker = Worker(core, queue, handlers={APP_JOB: self.svc.queued.handle})
        return await self._worker.handle(message)

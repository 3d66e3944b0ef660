"""The alert webhook: HMAC-SHA256-signed JSON, retried, bounded in time, never failing a run.

A receiver checks ``X-Mirror-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the shared
secret (``MIRROR_ALERT_WEBHOOK_SECRET``), of ``<X-Mirror-Timestamp>.<raw body>``, and refuses
a timestamp older than a few minutes (a replayed request). See ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

log = logging.getLogger("mirror.alerts")

SECRET_ENV = "MIRROR_ALERT_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
SIGNATURE_HEADER = "X-Mirror-Signature"
TIMESTAMP_HEADER = "X-Mirror-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, given: str, *, now: float, max_age_s: float = 300) -> bool:
    """What a receiver does: a matching signature on a recent timestamp."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    return age <= max_age_s and hmac.compare_digest(signature(secret, timestamp, body), given)


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only (config pattern)
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
        return int(answer.status)


def deliver(url: str, payload: dict[str, Any], secret: str, *, timeout_s: float = 5.0, attempts: int = 3) -> bool:
    """POST ``payload`` signed; retry a refused connection, a timeout, a 429 or a 5xx with a short
    backoff. True once a receiver answered 2xx. Never raises."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    for attempt in range(attempts):
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mirror-alerts",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        }
        try:
            status = _post(url, body, headers, timeout_s)
            if 200 <= status < 300:
                return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                log.warning("alert webhook refused the alert: HTTP %s (not retried)", exc.code)
                return False
        except (OSError, ValueError) as exc:
            log.warning("alert webhook unreachable (%s), attempt %d of %d", type(exc).__name__, attempt + 1, attempts)
        if attempt + 1 < attempts:
            time.sleep(min(0.5 * 2**attempt, 5.0))
    return False


def deliver_all(
    url: str, payloads: list[dict[str, Any]], secret: str, *, timeout_s: float, attempts: int
) -> list[bool]:
    """Send each payload, in worker threads, waiting at most what the retries could take: a
    hanging receiver costs the run a bounded delay after its jobs, never a failure."""
    if not payloads:
        return []
    deadline = attempts * (timeout_s + 5.0)
    with ThreadPoolExecutor(max_workers=min(4, len(payloads)), thread_name_prefix="mirror-webhook") as pool:
        futures = [pool.submit(deliver, url, p, secret, timeout_s=timeout_s, attempts=attempts) for p in payloads]
        results = []
        for f in futures:
            try:
                results.append(bool(f.result(timeout=deadline)))
            except FutureTimeout:
                results.append(False)
        return results

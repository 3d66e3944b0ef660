"""A loopback HTTP server speaking the subset of the OpenAI Images API that mirror uses.

The real SDK talks to it over HTTP (``base_url``). It keeps its own ledger of every image it
served (and so billed), returns realistic bodies and headers, and on demand returns each error
the API is known to return, slow responses, dropped connections, and real rate limiting.
Used by the tests and by bench/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai_answers import image_answer, is_marked, parse_multipart, picture, run_batch


@dataclass
class Fault:
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    message: str = "The server had an error while processing your request."
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    delay: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def rate_limit_fault(seconds: float = 0.2) -> Fault:
    return Fault(
        429,
        "requests",
        "rate_limit_exceeded",
        f"Rate limit reached for images per min. Please try again in {seconds}s.",
        {"retry-after-ms": str(int(seconds * 1000))},
    )


def quota_fault() -> Fault:
    return Fault(
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    )


def billing_fault() -> Fault:
    return Fault(400, "invalid_request_error", "billing_hard_limit_reached", "Billing hard limit has been reached")


def moderation_fault() -> Fault:
    return Fault(
        400,
        "image_generation_user_error",
        "moderation_blocked",
        "Your request was rejected by the safety system.",
        extra={"moderation_details": {"moderation_stage": "input", "categories": ["violence"]}},
    )


def auth_fault() -> Fault:
    return Fault(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-te***.")


def verify_fault() -> Fault:
    return Fault(
        403,
        "invalid_request_error",
        None,
        "Your organization must be verified to use the model `gpt-image-2`.",
    )


class FakeOpenAI:
    def __init__(
        self,
        latency: float = 0.0,
        images_per_minute: float | None = None,
        window_s: float = 60.0,
        known_models: dict[str, str | None] | None = None,
    ) -> None:
        self.latency = latency
        self.images_per_minute = images_per_minute
        self.window_s = window_s
        self.known_models = known_models or {
            "gpt-image-2-2026-04-21": None,
            "gpt-image-2": None,
            "gpt-image-1.5-2025-12-16": "2026-12-01",
        }
        self.faults: deque[Fault] = deque()
        self.fault_every: tuple[int, Fault] | None = None  # every n-th request gets this fault
        self.chaos: tuple[Any, list[tuple[float, Fault]]] | None = None  # (random.Random, [(share, fault)])
        self.ledger: list[dict[str, Any]] = []  # one entry per image served (billed)
        self.requests: list[dict[str, Any]] = []  # every request received
        self.rate_limited = 0
        self.off_style = 0
        self.bad_next: deque[str] = deque()  # serve these unusable answers next (see _bad_picture)
        self.slow_next: deque[float] = deque()  # bill, then answer only after this many seconds
        self.slow_random: tuple[Any, float, float] | None = None  # (rng, share, seconds): slow answers
        self.bad_random: tuple[Any, float, str] | None = None  # (rng, share, kind): unusable answers
        self.moderation_words: list[str] = ["stab", "punch"]
        self.files: dict[str, dict[str, Any]] = {}
        self.deleted_files: list[str] = []
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_fail: set[str] = set()  # custom_ids whose lines fail inside a batch
        self.batch_polls_to_complete = 2
        # (final status, lines answered): an 'expired' or 'cancelled' batch answers only the first
        # lines; the others come back in its error file (batch_expired / batch_cancelled), unbilled
        self.batch_end: tuple[str, int] | None = None
        self.moderation_requests: list[list[str]] = []  # the texts of each moderation request
        # image moderation: serve this many marked pictures next (the moderation endpoint flags
        # them); each image checked: {"model", "flagged", "sha256"}
        self.unsafe_next = 0
        self.moderation_faults: deque[Fault] = deque()  # answered to image moderation requests, in turn
        self.image_moderations: list[dict[str, Any]] = []
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified on every image request
        self._gate: tuple[int, threading.Event] | None = None  # (image requests to wait for, released)
        self.gate_timeouts = 0  # answers the gate let go only because nobody released it in time
        self._pictures = [picture(i) for i in range(4)]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---------------------------------------------------------------------------- control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def client_url(self, client: str) -> str:
        """The base URL for one client (a process the test starts): every request it sends, and
        every image billed for it, is tagged with ``client`` (``requests[i]["client"]``,
        ``ledger[i]["client"]``), so a test knows which process sent what."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/c/{client}/v1"

    def rng_shuffle(self, rows: list[Any]) -> None:
        """Batch output lines are not in input order."""
        rows.reverse()

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------------- the gate
    def hold(self, until: int | None = None, timeout_s: float = 60.0) -> None:
        """Hold every image answer from now on until ``until`` image requests have arrived (counted
        from now), or until release(): races are forced, not left to a latency. A held answer is
        let go after ``timeout_s`` regardless (counted in gate_timeouts), so a test never hangs."""
        with self._lock:
            self._gate = (self._image_requests() + (until if until is not None else 10**9), threading.Event())
            self._gate_timeout_s = timeout_s

    def release(self) -> None:
        with self._lock:
            if self._gate is not None:
                self._gate[1].set()
                self._gate = None

    def wait_for_requests(self, n: int, timeout_s: float = 60.0) -> None:
        """Block until ``n`` image requests (in all) have arrived; AssertionError after timeout_s."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._image_requests() >= n, timeout_s):
                raise AssertionError(f"{n} image request(s) expected, {self._image_requests()} arrived")

    def _image_requests(self) -> int:
        return len(self.requests)  # only image requests are recorded there

    def _pass_gate(self) -> None:
        with self._lock:
            self._arrived.notify_all()
            gate = self._gate
            if gate is None:
                return
            if self._image_requests() >= gate[0]:
                gate[1].set()
                self._gate = None
                return
            timeout = self._gate_timeout_s
        if not gate[1].wait(timeout):
            with self._lock:
                self.gate_timeouts += 1

    def push(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def billed_usd(self, prices: dict[str, float]) -> float:
        return sum(
            (
                e["usage"]["input_tokens_details"]["text_tokens"] * prices["text_in"]
                + e["usage"]["input_tokens_details"]["image_tokens"] * prices["image_in"]
                + e["usage"]["output_tokens"] * prices["image_out"]
            )
            / 1e6
            for e in self.ledger
        )

    # ---------------------------------------------------------------------------- serving
    def _next_fault(self) -> Fault | None:
        with self._lock:
            n = len(self.requests)
            if self.faults:
                return self.faults.popleft()
            if self.fault_every and n % self.fault_every[0] == 0:
                return self.fault_every[1]
            if self.chaos:
                rng, table = self.chaos
                roll = rng.random()
                for share, fault in table:
                    if roll < share:
                        return fault
                    roll -= share
            if self.images_per_minute:
                now = time.monotonic()
                while self._starts and self._starts[0] <= now - self.window_s:
                    self._starts.popleft()
                if len(self._starts) >= self.images_per_minute:
                    self.rate_limited += 1
                    wait = self._starts[0] + self.window_s - now
                    return rate_limit_fault(round(max(wait, 0.01), 3))
                self._starts.append(now)
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            client: str | None = None  # the tag of a client_url(): which process sent this

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def parse_request(self) -> bool:
                ok = super().parse_request()
                tagged = re.fullmatch(r"/c/([\w.-]+)(/.*)", self.path) if ok else None
                if tagged:
                    self.client, self.path = tagged.group(1), tagged.group(2)
                return ok

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:20])
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def _error(self, fault: Fault) -> None:
                if fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                body = {
                    "error": {
                        "message": fault.message,
                        "type": fault.type,
                        "param": None,
                        "code": fault.code,
                        **fault.extra,
                    }
                }
                self._send(fault.status, body, {"x-should-retry": "false", **fault.headers})

            def _moderate(self, params: dict[str, Any]) -> None:
                """Text inputs are flagged when they hold a moderation word, image inputs (data
                URLs) when they carry the marker (openai_answers.marked); each request counted."""
                raw = params["input"] if isinstance(params["input"], list) else [params["input"]]
                texts = [i if isinstance(i, str) else i.get("text", "") for i in raw if not _is_image(i)]
                images = [_image_bytes(i) for i in raw if _is_image(i)]
                with fake._lock:
                    if texts:
                        fake.moderation_requests.append(texts)
                    # an image check fails only by moderation_faults (the image tests' own queue);
                    # a text screen takes the next fault as before
                    fault = fake.moderation_faults.popleft() if images and fake.moderation_faults else None
                if fault is None and not images:
                    fault = fake._next_fault()
                if fault:
                    with fake._lock:
                        fake.image_moderations.extend({"model": params.get("model"), "answered": False} for _ in images)
                    return self._error(fault)
                words = fake.moderation_words
                results = [_moderation_result(any(w in t.lower() for w in words), "text") for t in texts]
                for data in images:
                    hit = data is not None and is_marked(data)
                    with fake._lock:
                        fake.image_moderations.append(
                            {
                                "model": params.get("model"),
                                "answered": True,
                                "flagged": hit,
                                "sha256": hashlib.sha256(data or b"").hexdigest(),
                            }
                        )
                    results.append(_moderation_result(hit, "image"))
                self._send(
                    200, {"id": "modr-" + uuid.uuid4().hex[:12], "model": params.get("model"), "results": results}
                )

            def do_GET(self) -> None:
                if self.path == "/_stats":
                    return self._send(
                        200,
                        {
                            "images": len(fake.ledger),
                            "requests": len(fake.requests),
                            "rate_limited": fake.rate_limited,
                            "first": fake.requests[0]["t"] if fake.requests else 0,
                            "last": fake.requests[-1]["t"] if fake.requests else 0,
                        },
                    )
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer "):
                    return self._error(auth_fault())
                if self.path.startswith("/v1/files/") and self.path.endswith("/content"):
                    fid = self.path.split("/")[3]
                    f = fake.files.get(fid)
                    if f is None:
                        return self._send(
                            404, {"error": {"message": "No such File", "type": "invalid_request_error", "code": None}}
                        )
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(f["data"])))
                    self.end_headers()
                    self.wfile.write(f["data"])
                    return None
                if self.path.startswith("/v1/batches/"):
                    batch = fake.batches.get(self.path.rsplit("/", 1)[1])
                    if batch is None:
                        return self._send(
                            404, {"error": {"message": "No such batch", "type": "invalid_request_error", "code": None}}
                        )
                    batch["polls"] += 1
                    if batch["status"] != "completed":
                        batch["status"] = "in_progress"
                        if batch["polls"] >= fake.batch_polls_to_complete:
                            run_batch(fake, batch)
                            batch["status"] = fake.batch_end[0] if fake.batch_end else "completed"
                    return self._send(200, {k: v for k, v in batch.items() if k != "polls"})
                if self.path.startswith("/v1/models/"):
                    model = self.path.rsplit("/", 1)[1]
                    if model not in fake.known_models:
                        return self._send(
                            404,
                            {
                                "error": {
                                    "message": f"The model `{model}` does not exist",
                                    "type": "invalid_request_error",
                                    "param": None,
                                    "code": "model_not_found",
                                }
                            },
                        )
                    return self._send(
                        200,
                        {
                            "id": model,
                            "object": "model",
                            "created": 1745000000,
                            "owned_by": "system",
                            "shutdown_date": fake.known_models[model],
                        },
                    )
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": None}})

            def do_DELETE(self) -> None:
                if self.path.startswith("/v1/files/"):
                    fid = self.path.rsplit("/", 1)[1]
                    with fake._lock:
                        existed = fake.files.pop(fid, None) is not None
                        if existed:
                            fake.deleted_files.append(fid)
                    if not existed:
                        return self._send(
                            404, {"error": {"message": "No such File", "type": "invalid_request_error", "code": None}}
                        )
                    return self._send(200, {"id": fid, "object": "file", "deleted": True})
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": None}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                ctype = self.headers.get("Content-Type", "")
                if self.path == "/v1/files":
                    fields, files = parse_multipart(ctype, body)
                    fid = "file-" + uuid.uuid4().hex[:16]
                    f = files[0]
                    fake.files[fid] = {
                        "purpose": fields.get("purpose"),
                        "expires_after_s": fields.get("expires_after[seconds]"),
                        "data": f["bytes"],
                        "filename": f["filename"],
                        "content_type": f["content_type"],
                    }
                    return self._send(
                        200,
                        {
                            "id": fid,
                            "object": "file",
                            "bytes": len(f["bytes"]),
                            "created_at": int(time.time()),
                            "filename": f["filename"],
                            "purpose": fields.get("purpose"),
                            "status": "processed",
                        },
                    )
                if self.path == "/v1/batches":
                    params = json.loads(body)
                    if params.get("input_file_id") not in fake.files:
                        return self._send(
                            400,
                            {"error": {"message": "unknown input file", "type": "invalid_request_error", "code": None}},
                        )
                    bid = "batch_" + uuid.uuid4().hex[:16]
                    batch = {
                        "id": bid,
                        "object": "batch",
                        "endpoint": params["endpoint"],
                        "errors": None,
                        "input_file_id": params["input_file_id"],
                        "completion_window": "24h",
                        "status": "validating",
                        "output_file_id": None,
                        "error_file_id": None,
                        "created_at": int(time.time()),
                        "metadata": params.get("metadata"),
                        "request_counts": {"total": 0, "completed": 0, "failed": 0},
                        "polls": 0,
                    }
                    fake.batches[bid] = batch
                    return self._send(200, {k: v for k, v in batch.items() if k != "polls"})
                if self.path == "/v1/moderations":
                    return self._moderate(json.loads(body))
                if self.path == "/v1/images/generations":
                    params = json.loads(body)
                    refs: list[dict[str, Any]] = []
                elif self.path == "/v1/images/edits":
                    params, refs = parse_multipart(ctype, body)
                else:
                    return self._send(
                        404,
                        {"error": {"message": "unknown path", "type": "invalid_request_error", "code": None}},
                    )
                record = {
                    "path": self.path,
                    "params": params,
                    "references": refs,
                    "t": time.monotonic(),
                    "client": self.client,
                    "auth": hashlib.sha256(self.headers.get("Authorization", "").encode()).hexdigest()[:8],
                }
                with fake._lock:
                    fake.requests.append(record)
                fake._pass_gate()
                fault = fake._next_fault()
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault:
                    return self._error(fault)
                for ref in refs:
                    if not ref["content_type"].startswith("image/"):
                        return self._error(
                            Fault(
                                400,
                                "invalid_request_error",
                                "unsupported_file_mimetype",
                                f"Invalid file '{ref['filename']}': unsupported mimetype ('{ref['content_type']}').",
                            )
                        )
                if fake.latency:
                    time.sleep(fake.latency)
                answer = image_answer(
                    fake,
                    self.path,
                    params,
                    [r["sha256"] for r in refs],
                    batch=False,
                    t_start=record["t"],
                    client=self.client,
                )
                with fake._lock:
                    slow = fake.slow_next.popleft() if fake.slow_next else 0.0
                    if not slow and fake.slow_random and fake.slow_random[0].random() < fake.slow_random[1]:
                        slow = fake.slow_random[2]
                if slow:
                    time.sleep(slow)  # billed, but the client may have given up by now
                request_id = answer["request_id"]
                raw = json.dumps(answer["body"]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.send_header("x-request-id", request_id)
                self.send_header("x-ratelimit-limit-requests", str(int(fake.images_per_minute or 100_000)))
                self.send_header("x-ratelimit-remaining-requests", "99")
                self.send_header("x-ratelimit-reset-requests", "120ms")
                self.end_headers()
                try:
                    self.wfile.write(raw)
                    self.wfile.flush()
                finally:
                    with fake._lock:
                        for entry in reversed(fake.ledger):
                            if entry["request_id"] == request_id:
                                entry["t_end"] = time.monotonic()
                                break

        return Handler


MODERATION_CATEGORIES = [
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
]
# what a flagged input is flagged for: violence for text, violence and violence/graphic for images
FLAGGED_FOR = {"text": {"violence"}, "image": {"violence", "violence/graphic"}}


def _is_image(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "image_url"


def _image_bytes(item: dict[str, Any]) -> bytes | None:
    """The bytes of a data-URL image input (None for a URL or a malformed one)."""
    url = str(item.get("image_url", {}).get("url", ""))
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None


def _moderation_result(hit: bool, kind: str) -> dict[str, Any]:
    cats = {n: hit and n in FLAGGED_FOR[kind] for n in MODERATION_CATEGORIES}
    return {
        "flagged": hit,
        "categories": cats,
        "category_scores": {n: (0.97 if cats[n] else 0.001) for n in MODERATION_CATEGORIES},
        "category_applied_input_types": {n: [kind] for n in MODERATION_CATEGORIES},
    }


def serve_forever(port_queue: Any, latency: float, images_per_minute: float | None, window_s: float) -> None:
    """Run a FakeOpenAI in this (child) process; bench/ uses it to keep server CPU out of its figures."""
    server = FakeOpenAI(latency=latency, images_per_minute=images_per_minute, window_s=window_s).start()
    port_queue.put(server.url)
    server._thread.join()

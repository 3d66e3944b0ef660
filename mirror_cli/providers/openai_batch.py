"""The OpenAI Batch API (half price, 24 h window) for work that can wait: the same requests as
the `openai` provider, as JSONL lines. Edits use the JSON body with references uploaded as files
and named by ``file_id``. The flow (submit, poll, collect) lives in ``mirror_cli/batch.py``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..models import ImageRequest
from .base import Capabilities, ProviderContext
from .openai import EXT, OpenAIProvider, classify, request_body

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
TERMINAL = {"completed", "failed", "expired", "cancelled"}


class OpenAIBatchProvider(OpenAIProvider):
    name = "openai-batch"
    capabilities = Capabilities(edits=True, max_references=16, sizes=None, batch=True, uses_references=True)

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self._uploaded: dict[str, str] = {}

    async def upload_reference(self, data: bytes, mime: str) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._uploaded:
            try:
                f = await self.client.files.create(
                    file=(f"ref-{digest[:12]}.{EXT.get(mime, 'png')}", data, mime), purpose="vision"
                )
            except Exception as exc:
                raise classify(exc) from exc
            self._uploaded[digest] = f.id
        return self._uploaded[digest]

    async def line(self, custom_id: str, request: ImageRequest) -> tuple[str, dict[str, Any]]:
        """(endpoint, JSONL line) for one request."""
        body = request_body(request)
        url = "/v1/images/generations"
        if request.references:
            url = "/v1/images/edits"
            body["images"] = [
                {"file_id": await self.upload_reference(data, ref.mime)}
                for ref, data in zip(request.references, request.reference_bytes, strict=True)
            ]
            if request.input_fidelity:
                body["input_fidelity"] = request.input_fidelity
        return url, {"custom_id": custom_id, "method": "POST", "url": url, "body": body}

    async def submit(
        self, endpoint: str, lines: list[dict[str, Any]], metadata: dict[str, str]
    ) -> list[tuple[str, list[str]]]:
        """Upload and create batches for ``lines``, split under the request-count and size limits.
        Returns each batch id with the custom_ids it carries."""
        made: list[tuple[str, list[str]]] = []
        chunk: list[bytes] = []
        ids: list[str] = []
        size = 0
        for line in [*lines, None]:
            raw = None if line is None else json.dumps(line, separators=(",", ":")).encode() + b"\n"
            if raw is None or len(chunk) >= MAX_REQUESTS or size + len(raw) > MAX_BYTES:
                if chunk:
                    made.append((await self._create(endpoint, b"".join(chunk), metadata), ids))
                chunk, ids, size = [], [], 0
            if raw is not None and line is not None:
                chunk.append(raw)
                ids.append(line["custom_id"])
                size += len(raw)
        return made

    async def _create(self, endpoint: str, data: bytes, metadata: dict[str, str]) -> str:
        try:
            f = await self.client.files.create(file=("requests.jsonl", data, "application/jsonl"), purpose="batch")
            batch = await self.client.batches.create(
                input_file_id=f.id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata=metadata,
            )
        except Exception as exc:
            raise classify(exc) from exc
        return str(batch.id)

    async def status(self, batch_id: str) -> dict[str, Any]:
        try:
            b = await self.client.batches.retrieve(batch_id)
        except Exception as exc:
            raise classify(exc) from exc
        return {
            "id": b.id,
            "status": b.status,
            "output_file_id": b.output_file_id,
            "error_file_id": b.error_file_id,
            "counts": b.request_counts.model_dump() if b.request_counts else {},
        }

    async def lines_of(self, file_id: str) -> list[dict[str, Any]]:
        try:
            content = await self.client.files.content(file_id)
        except Exception as exc:
            raise classify(exc) from exc
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]

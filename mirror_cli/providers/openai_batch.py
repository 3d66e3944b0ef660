"""The OpenAI Batch API (half price, 24 h window) for work that can wait: the same requests as
the `openai` provider, as JSONL lines. Edits use the JSON body with references uploaded as files
and named by ``file_id``. The flow (submit, poll, collect) lives in ``mirror_cli/batch.py``."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from ..models import PHOTO_ROLE, ImageRequest
from .base import Capabilities, ProviderContext
from .openai import EXT, OpenAIProvider, classify, request_body

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
TERMINAL = {"completed", "failed", "expired", "cancelled"}
# Uploaded files are created with an expiry (the API's minimum is an hour, its maximum 30 days) and
# deleted once collected: a user's photo never outlives the batch that needed it by more than this.
UPLOAD_EXPIRY_S = 7 * 86400
REUSE_UPLOAD_S = 6 * 86400  # an upload older than this may expire before a resubmitted batch runs
OUTPUT_EXPIRY_S = 7 * 86400


class OpenAIBatchProvider(OpenAIProvider):
    name = "openai-batch"
    capabilities = Capabilities(edits=True, max_references=16, sizes=None, batch=True, uses_references=True)

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        # sha256 -> {"id": file id, "at": unix time, "users": [who it was uploaded for], "photo":
        # a person's photo}: the run's record holds it (BatchRunner binds it to
        # run.params["uploads"]), so a resubmission reuses the uploads and erasure finds them.
        self.uploaded: dict[str, dict[str, Any]] = {}

    async def upload_reference(self, data: bytes, mime: str, owner: str = "", photo: bool = False) -> str:
        digest = hashlib.sha256(data).hexdigest()
        known = self.uploaded.get(digest)
        if known is None or time.time() - float(known.get("at", 0)) > REUSE_UPLOAD_S:
            try:
                f = await self.client.files.create(
                    file=(f"ref-{digest[:12]}.{EXT.get(mime, 'png')}", data, mime),
                    purpose="vision",
                    expires_after={"anchor": "created_at", "seconds": UPLOAD_EXPIRY_S},
                )
            except Exception as exc:
                raise classify(exc) from exc
            self.uploaded[digest] = {"id": f.id, "at": time.time(), "users": [], "photo": False}
        entry = self.uploaded[digest]
        if owner and owner not in entry.setdefault("users", []):
            entry["users"].append(owner)
        entry["photo"] = bool(entry.get("photo")) or photo
        return str(entry["id"])

    async def delete_file(self, file_id: str) -> bool:
        """Delete a file we uploaded or a batch produced; a file already gone is fine."""
        import openai

        try:
            await self.client.files.delete(file_id)
        except openai.NotFoundError:
            return False
        except Exception as exc:
            raise classify(exc) from exc
        return True

    async def line(self, custom_id: str, request: ImageRequest, owner: str = "") -> tuple[str, dict[str, Any]]:
        """(endpoint, JSONL line) for one request; its uploads are recorded as ``owner``'s."""
        body = request_body(request)
        url = "/v1/images/generations"
        if request.references:
            url = "/v1/images/edits"
            body["images"] = [
                {"file_id": await self.upload_reference(data, ref.mime, owner, ref.role == PHOTO_ROLE)}
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
            f = await self.client.files.create(
                file=("requests.jsonl", data, "application/jsonl"),
                purpose="batch",
                expires_after={"anchor": "created_at", "seconds": UPLOAD_EXPIRY_S},
            )
            batch = await self.client.batches.create(
                input_file_id=f.id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata=metadata,
                output_expires_after={"anchor": "created_at", "seconds": OUTPUT_EXPIRY_S},
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
            "input_file_id": b.input_file_id,
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

"""The spool: every paid image lands here (atomic rename, fsync) before anything else touches
it, and leaves only after it is stored and in the ledger. A later run ingests what it finds
instead of paying again."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .models import ImageResult, TokenUsage


@dataclass
class Spooled:
    result: ImageResult
    meta: dict[str, Any]


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _paths(self, uid: str, key: str) -> tuple[Path, Path]:
        folder = self.root / uid
        return folder / f"{key}.img", folder / f"{key}.json"

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def put(self, uid: str, key: str, result: ImageResult, meta: dict[str, Any]) -> None:
        img, info = self._paths(uid, key)
        img.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._atomic_write(img, result.data)
        body = {
            **meta,
            "mime": result.mime,
            "usage": result.usage.model_dump(),
            "cost_usd": result.cost_usd,
            "request_id": result.request_id,
            "provider": result.provider,
            "model": result.model,
            "latency_s": result.latency_s,
        }
        # The metadata file is written last: an image without it is incomplete and ignored.
        self._atomic_write(info, json.dumps(body).encode())

    def get(self, uid: str, key: str) -> Spooled | None:
        img, info = self._paths(uid, key)
        if not (img.exists() and info.exists()):
            return None
        meta = json.loads(info.read_text())
        result = ImageResult(
            data=img.read_bytes(),
            mime=meta["mime"],
            usage=TokenUsage(**meta["usage"]),
            cost_usd=meta["cost_usd"],
            request_id=meta.get("request_id"),
            provider=meta["provider"],
            model=meta["model"],
            latency_s=meta.get("latency_s", 0.0),
        )
        return Spooled(result, meta)

    def remove(self, uid: str, key: str) -> None:
        img, info = self._paths(uid, key)
        # The metadata file marks an entry complete: it goes first, so a crash in between leaves
        # an ignored image file, never a complete-looking entry without its image.
        info.unlink(missing_ok=True)
        img.unlink(missing_ok=True)

    def pending(self) -> list[tuple[str, str]]:
        """(user, request key) of every complete spooled image."""
        if not self.root.exists():
            return []
        return sorted((p.parent.name, p.stem) for p in self.root.glob("*/*.json"))

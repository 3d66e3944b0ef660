"""Shards of a nightly run: ``--shard i/N`` (or an indexed job's variables) owns a contiguous
range of the stored shard buckets."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError
from ..stores.base import SHARD_BUCKETS, shard_bucket


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str | None) -> Shard | None:
        """'i/N' (0-based); falls back to Cloud Run / Kubernetes indexed-job variables."""
        if text:
            try:
                i, n = (int(x) for x in text.split("/"))
            except ValueError:
                raise UsageError(f"Invalid shard {text!r}.", "Use --shard i/N with 0 <= i < N, e.g. 0/4.") from None
        elif "CLOUD_RUN_TASK_INDEX" in os.environ:
            i, n = int(os.environ["CLOUD_RUN_TASK_INDEX"]), int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1"))
        elif "JOB_COMPLETION_INDEX" in os.environ:
            i = int(os.environ["JOB_COMPLETION_INDEX"])
            n = int(os.environ.get("MIRROR_SHARD_COUNT") or os.environ.get("JOB_COMPLETIONS") or "1")
        else:
            return None
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"Invalid shard {i}/{n}.", "The index must satisfy 0 <= i < N.")
        if n > SHARD_BUCKETS:
            raise UsageError(f"Invalid shard {i}/{n}.", f"At most {SHARD_BUCKETS} shards.")
        return cls(i, n)

    @property
    def buckets(self) -> tuple[int, int]:
        """The contiguous range [lo, hi) of stored shard buckets this shard owns."""
        return self.index * SHARD_BUCKETS // self.count, (self.index + 1) * SHARD_BUCKETS // self.count

    def owns(self, uid: str) -> bool:
        lo, hi = self.buckets
        return lo <= shard_bucket(uid) < hi

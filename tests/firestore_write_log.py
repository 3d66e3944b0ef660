"""Run the mirror CLI with every Firestore write logged: ``python firestore_write_log.py LOG args...``.

A test instrument, not a mock: the real client talks to the real emulator; each Commit RPC's
documents are appended to LOG as ``<monotonic seconds> <document path>`` before the call."""

from __future__ import annotations

import sys
import time
from typing import Any

from google.cloud.firestore_v1.services.firestore.client import FirestoreClient

_log_path = sys.argv.pop(1)
_real_commit = FirestoreClient.commit


def _logged_commit(self: Any, request: Any = None, *args: Any, **kwargs: Any) -> Any:
    writes = (request.get("writes") if isinstance(request, dict) else getattr(request, "writes", None)) or []
    now = time.time()
    with open(_log_path, "a", encoding="utf-8") as log:
        for w in writes:
            name = w.update.name or w.delete or w.transform.document
            log.write(f"{now:.6f} {name.split('/documents/', 1)[-1]}\n")
    return _real_commit(self, request, *args, **kwargs)


FirestoreClient.commit = _logged_commit  # type: ignore[method-assign]

from mirror_cli.cli.app import main  # noqa: E402

sys.argv[0] = "mirror"
sys.exit(main())

"""The doctor's approvals check: which stages of the project's fallback set wait for a designer."""

from __future__ import annotations

from ..fallbacks import FallbackSet


def approvals_check(fallbacks: FallbackSet) -> list[dict[str, str | None]]:
    own = fallbacks.folders[0]
    if not own.entries:
        return [
            {"check": "approvals", "status": "ok", "detail": "the shipped, approved fallback set serves", "fix": None}
        ]
    waiting = fallbacks.unapproved().get(str(own.folder), [])
    if not waiting:
        return [
            {"check": "approvals", "status": "ok", "detail": f"every stage of {own.folder} is approved", "fix": None}
        ]
    return [
        {
            "check": "approvals",
            "status": "warn",
            "detail": f"{len(waiting)} stage(s) of {own.folder} not approved ({', '.join(waiting)}): "
            "the shipped approved set serves them",
            "fix": "Review them with 'mirror review' (approve every variant of a stage to serve it).",
        }
    ]

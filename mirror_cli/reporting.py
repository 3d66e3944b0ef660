"""Reports on avatars: a user reports one of their avatars (``POST /api/v1/avatar/{id}/report``), or
the image moderation check flags one; either way the avatar is hidden at once and an operator
resolves the report (``mirror reports resolve``).

For the moderation check (issue #19 item 4) the entry point is
``file_system_report(store, avatar, reason="moderation", verdict={...}, now=...)``: it files an
open report carrying the verdict and hides the avatar, so a flagged image is listed in
``mirror reports list`` and never shown. Store the record first (or with
``hidden_by=report_id(uid, avatar_id)``, so it is hidden from its first write), then call it.

What "hidden" means (``planner.shown``): the avatar is left out of the user's list, the timeline
and the gallery, cannot be selected, is never a reference for a later image, and a cache hit on it
(or the planner's "you already have this stage") is answered with the user's latest shown avatar
or the stage's fallback at no cost, never with a new purchase: the stage was made and paid for
once; an explicit regenerate buys a new one. If the hidden avatar was the one the user shows, the
latest shown avatar becomes the one shown.

Resolving: ``restored`` shows the avatar again (and makes it the one shown when it is the user's
newest); ``removed`` keeps it hidden for good and deletes its image and thumbnail from storage,
keeping the record (so it is never bought again by itself) and the report (with the prompt, model
and verdict copied into it). A removed report cannot be restored: its image is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import NotFoundError, ReportLimitError, UnknownReportError, UsageError
from .models import REPORT_NOTE_MAX, AvatarRecord, Report, ReportReason, ReportStatus
from .planner import shown
from .stores.base import Selection, Store
from .stores.reports import ReportLimitReached, report_id

Action = Literal["restore", "remove"]

__all__ = ["Filed", "file_report", "file_system_report", "report_id", "resolve_report", "show_report"]


@dataclass(frozen=True)
class Filed:
    report: Report
    created: bool  # False: the avatar was reported already (a repeat changes nothing)


def _verdict_of(avatar: AvatarRecord) -> dict[str, Any] | None:
    """The moderation verdict the avatar carries, if the record has one (a field the moderation
    check adds); the gate's validation otherwise says nothing about content, so it is not copied."""
    verdict = getattr(avatar, "moderation", None)
    if verdict is None:
        return None
    if hasattr(verdict, "model_dump"):
        dumped: dict[str, Any] = verdict.model_dump(mode="json")
        return dumped
    return dict(verdict) if isinstance(verdict, dict) else {"verdict": str(verdict)}


def _note(note: str, what: str) -> str:
    note = note.strip()
    if len(note) > REPORT_NOTE_MAX or not note.isprintable():
        raise UsageError(
            f"The {what} is not usable: at most {REPORT_NOTE_MAX} printable characters on one line.",
            "Shorten it, without line breaks or control characters.",
        )
    return note


def new_report(
    avatar: AvatarRecord,
    reason: ReportReason,
    *,
    note: str = "",
    filed_by: str = "app",
    at: datetime,
    verdict: dict[str, Any] | None = None,
) -> Report:
    return Report(
        id=report_id(avatar.user_id, avatar.id),
        user_id=avatar.user_id,
        avatar_id=avatar.id,
        reason=reason,
        note=_note(note, "note"),
        filed_by=filed_by,
        created_at=at.astimezone(UTC),
        target=avatar.target,
        stage=avatar.stage,
        prompt=avatar.prompt,
        model=avatar.model,
        provider=avatar.provider,
        moderation=verdict if verdict is not None else _verdict_of(avatar),
    )


def _until_tomorrow(now: datetime) -> int:
    """Seconds until the next UTC day, when the user's daily count starts again."""
    utc = now.astimezone(UTC)
    midnight = (utc + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - utc).total_seconds()))


def file_report(
    store: Store,
    avatar: AvatarRecord,
    reason: ReportReason,
    *,
    now: datetime,
    note: str = "",
    filed_by: str = "app",
    daily_limit: int | None = None,
    verdict: dict[str, Any] | None = None,
) -> Filed:
    """File a report on ``avatar`` and hide it (one store transaction); a repeat returns the
    report already open. ``daily_limit``: how many reports the user may file per UTC day."""
    report = new_report(avatar, reason, note=note, filed_by=filed_by, at=now, verdict=verdict)
    try:
        stored, created = store.file_report(report, now.astimezone(UTC).strftime("%Y-%m-%d"), daily_limit)
    except ReportLimitReached as exc:
        wait = _until_tomorrow(now)
        raise ReportLimitError(
            f"User {avatar.user_id} filed {exc.limit} reports today, the daily limit.",
            f"Try again tomorrow (in {wait} s), or ask the operator (mirror reports list --user {avatar.user_id}).",
            wait,
        ) from exc
    if created:
        _show_another(store, avatar, now)
    return Filed(stored, created)


def file_system_report(
    store: Store,
    avatar: AvatarRecord,
    reason: ReportReason = "moderation",
    verdict: dict[str, Any] | None = None,
    *,
    note: str = "",
    now: datetime | None = None,
) -> Report:
    """A report filed by the tool itself (the moderation check): open, not counted against the
    user's daily limit, the avatar hidden at once. ``now`` defaults to the avatar's creation time
    (the moment it was checked); pass the core's clock when filing later."""
    return file_report(
        store,
        avatar,
        reason,
        now=now or avatar.created_at,
        note=note[:REPORT_NOTE_MAX],
        filed_by="moderation",
        verdict=verdict,
    ).report


def _show_another(store: Store, hidden: AvatarRecord, now: datetime) -> None:
    """When the user shows the avatar just hidden, their latest shown avatar becomes the one shown."""
    chosen = store.get_selection(hidden.user_id)
    if chosen is None or chosen.avatar_id != hidden.id:
        return
    others = [r for r in store.list_avatars(hidden.user_id) if shown(r) and r.id != hidden.id]
    if others:
        latest = max(others, key=lambda r: (r.created_at, r.id))
        store.put_selection(Selection(hidden.user_id, latest.id, latest.stage, latest.target, now))


def show_report(store: Store, rid: str) -> Report:
    found = store.get_report(rid) if 0 < len(rid) <= 64 and rid.isprintable() else None
    if found is None:
        raise UnknownReportError(
            f"There is no report {rid[:64]!r}.", "List the reports with: mirror reports list --status open"
        )
    return found


def resolve_report(store: Store, rid: str, action: Action, *, by: str, note: str, now: datetime) -> Report:
    """An operator's decision: ``restore`` shows the avatar again, ``remove`` hides it for good and
    deletes its image and thumbnail (the record and the report stay)."""
    report = show_report(store, rid)
    status: ReportStatus = "restored" if action == "restore" else "removed"
    if report.status == "removed" and status == "restored":
        raise UsageError(
            f"Report {rid} was resolved as removed: the avatar's image was deleted and cannot be shown again.",
            "Regenerate the stage for the user instead (mirror generate --user U --stage S --regenerate).",
        )
    done = store.resolve_report(rid, status, by, _note(note, "resolution note"), now)
    if done is None:  # erased in between
        raise UnknownReportError(f"There is no report {rid!r} any more.", "It was erased with its user.")
    avatar = store.get_avatar(done.user_id, done.avatar_id)
    if avatar is not None and status == "removed":
        for ref in (avatar.image_path, avatar.thumb_path):
            if ref:
                store.delete_image(ref)
    if avatar is not None and status == "restored":
        _show_if_newest(store, avatar, now)
    return done


def _show_if_newest(store: Store, avatar: AvatarRecord, now: datetime) -> None:
    good = [r for r in store.list_avatars(avatar.user_id) if shown(r) or r.id == avatar.id]
    newest = max(good, key=lambda r: (r.created_at, r.id))
    if newest.id == avatar.id:
        chosen = store.get_selection(avatar.user_id)
        if chosen is None or chosen.avatar_id != avatar.id:
            store.put_selection(Selection(avatar.user_id, avatar.id, avatar.stage, avatar.target, now))


def reportable(store: Store, uid: str, avatar_id: str) -> AvatarRecord:
    """The user's avatar to report, or a not-found error (another user's avatar is not found)."""
    record = store.get_avatar(uid, avatar_id) if 0 < len(avatar_id) <= 128 and avatar_id.isprintable() else None
    if record is None or record.user_id != uid:
        raise NotFoundError(
            f"User {uid} has no avatar {avatar_id[:128]!r}.",
            "Report one of the user's avatars (GET /api/v1/avatar/user/{id}).",
        )
    return record

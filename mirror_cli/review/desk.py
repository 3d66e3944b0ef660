"""The review desk: what a designer reviews (the project's fallback set, or the queue of flagged
avatars), the images to compare, and the decisions, on one core. The review page and
``mirror review`` both go through it."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import NotFoundError, UsageError
from ..fallbacks import FallbackEntry
from ..planner import shown
from ..stores.base import Review, ReviewKind, ReviewState
from .approvals import avatar_key, decide, effective_state, fallback_key, file_sha256, parse_key

if TYPE_CHECKING:
    from ..core import Mirror
    from ..models import AvatarRecord

Queue = Literal["set", "flagged"]
ARCHIVE = "approved"  # <set folder>/approved/<sha256>.webp: every image a designer approved


@dataclass
class ReviewItem:
    kind: ReviewKind
    key: str
    stage: str
    label: str
    variant: str  # the fallback variant, or the user id of a flagged avatar
    state: ReviewState
    sha256: str
    by: str | None
    at: str | None
    note: str
    reason: str | None  # why an avatar was flagged
    has_previous: bool
    # a flagged avatar hidden by a report (user's or image moderation's): never shown to its user
    hidden_by: str | None = None
    image_removed: bool = False  # the report was resolved "removed": its image is deleted

    @property
    def hidden_note(self) -> str:
        """'hidden by report X' (and that its image is deleted), or '' for a shown avatar."""
        if self.hidden_by is None:
            return ""
        return f"hidden by report {self.hidden_by}" + ("; removed, image deleted" if self.image_removed else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hidden": self.hidden_note or None}


class ReviewDesk:
    def __init__(self, core: Mirror) -> None:
        self.core = core
        self.style = core.configs.style.name

    # ------------------------------------------------------------------------------ listing
    @property
    def folder(self) -> Path:
        """The designers' own set (the project's fallback folder for this style)."""
        return self.core.fallbacks.folders[0].folder

    def _own_entries(self) -> list[FallbackEntry]:
        folder = self.core.fallbacks.folders[0]
        folder._entries = None  # a re-render may have rewritten the manifest since
        return folder.entries

    def items(
        self,
        queue: Queue = "set",
        *,
        stage: str | None = None,
        variant: str | None = None,
        state: str | None = None,
    ) -> list[ReviewItem]:
        found = self._set_items() if queue == "set" else self._flagged_items()
        return [
            i
            for i in found
            if (stage is None or i.stage == stage)
            and (variant is None or i.variant == variant)
            and (state is None or i.state == state)
        ]

    def _set_items(self) -> list[ReviewItem]:
        reviews = {r.key: r for r in self.core.store.list_reviews("fallback", prefix=f"{self.style}/")}
        order = [*self.core.configs.stages.names, *self.core.configs.stages.trilogy]
        out = []
        for e in sorted(
            self._own_entries(), key=lambda e: (order.index(e.target) if e.target in order else 99, e.variant)
        ):
            key = fallback_key(self.style, e.target, e.variant)
            review = reviews.get(key)
            state = "approved" if e.approved_in_manifest else effective_state(review, e.sha256)
            current = review if review is not None and review.sha256 == e.sha256 else None
            out.append(
                ReviewItem(
                    "fallback",
                    key,
                    e.target,
                    self.core.configs.label(e.target),
                    e.variant,
                    state,
                    e.sha256,
                    current.by if current else None,
                    current.at.isoformat() if current and current.at else None,
                    current.note if current else "",
                    None,
                    self._previous_fallback(e, review) is not None,
                )
            )
        return out

    def _flagged_items(self) -> list[ReviewItem]:
        store = self.core.store
        out = []
        for uid in store.iter_user_ids():
            records = [r for r in store.list_avatars(uid) if _needs_review(r)]
            if not records:
                continue
            reviews = {r.key: r for r in store.list_reviews("avatar", prefix=f"{uid}/")}
            for r in records:
                key = avatar_key(uid, r.id)
                review = reviews.get(key)
                sha = review.sha256 if review else ""
                out.append(
                    ReviewItem(
                        "avatar",
                        key,
                        r.target,
                        self.core.configs.label(r.target),
                        uid,
                        review.state if review else "draft",
                        sha,
                        review.by if review else None,
                        review.at.isoformat() if review and review.at else None,
                        review.note if review else "",
                        r.reason or ("identity drift" if r.identity.get("drift") else None),
                        self._previous_avatar(uid, r) is not None,
                        r.hidden_by,
                        self._removed(r),
                    )
                )
        return out

    def _removed(self, record: AvatarRecord) -> bool:
        """Whether the report hiding ``record`` removed it (its image and thumbnail are deleted)."""
        if record.hidden_by is None:
            return False
        report = self.core.store.get_report(record.hidden_by)
        return report is not None and report.status == "removed"

    # ------------------------------------------------------------------------------- images
    def _entry(self, key: str) -> FallbackEntry:
        style, target, variant = parse_key("fallback", key)
        for e in self._own_entries():
            if style == self.style and e.target == target and e.variant == variant:
                return e
        raise NotFoundError(
            f"No fallback asset {key} in {self.folder}.", "Run 'mirror seed-fallbacks' to render the set first."
        )

    def _record(self, key: str) -> AvatarRecord:
        uid, avatar_id = parse_key("avatar", key)
        record = self.core.store.get_avatar(uid, avatar_id)
        if record is None:
            raise NotFoundError(
                f"No avatar {key}.", "Pick one from the flagged queue ('mirror review list --flagged')."
            )
        return record

    def _refuse_removed(self, key: str, record: AvatarRecord) -> None:
        if self._removed(record):
            raise NotFoundError(
                f"The image of avatar {key} was deleted: report {record.hidden_by} removed it.",
                f"Nothing left to review: see its report with 'mirror reports show {record.hidden_by}'.",
            )

    def _previous_fallback(self, e: FallbackEntry, review: Review | None) -> Path | None:
        """The last approved image of this asset if it changed since, else what serves meanwhile."""
        if review and review.approved_sha256 and review.approved_sha256 != e.sha256:
            archived = self.folder / ARCHIVE / f"{review.approved_sha256}.webp"
            if archived.is_file():
                return archived
        for other in self.core.fallbacks.folders[1:]:
            for o in other.entries:
                if o.target == e.target and o.variant == e.variant and o.approved_in_manifest:
                    return other.folder / o.file
        return None

    def _previous_avatar(self, uid: str, record: AvatarRecord) -> AvatarRecord | None:
        earlier = [
            r
            for r in self.core.store.list_avatars(uid)
            if r.target == record.target and r.created_at < record.created_at and not _needs_review(r) and shown(r)
        ]
        return earlier[-1] if earlier else None

    def image(self, kind: ReviewKind, key: str, which: Literal["current", "previous"] = "current") -> bytes:
        if kind == "fallback":
            e = self._entry(key)
            if which == "current":
                return (self.folder / e.file).read_bytes()
            review = self.core.store.get_review("fallback", key)
            path = self._previous_fallback(e, review)
        else:
            record = self._record(key)
            if which == "current":
                self._refuse_removed(key, record)
                return self.core.store.read_image(record.image_path)
            prev = self._previous_avatar(record.user_id, record)
            if prev is not None:
                return self.core.store.read_image(prev.image_path)
            path = None
        if path is None:
            raise NotFoundError(f"No earlier approved image of {key}.", None)
        return path.read_bytes()

    # ----------------------------------------------------------------------------- decisions
    def decide(self, kind: ReviewKind, key: str, state: str | None, by: str, note: str | None = None) -> Review:
        """Approve, reject or annotate (``state`` None: keep the current state, change the note)."""
        store = self.core.store
        previous = store.get_review(kind, key)
        if kind == "fallback":
            e = self._entry(key)
            path = self.folder / e.file
            sha = file_sha256(path)
            if sha != e.sha256:
                raise UsageError(
                    f"The image of {key} does not match its manifest (it changed on disk).",
                    "Run 'mirror seed-fallbacks' again to re-render it, then review it.",
                )
        else:
            record = self._record(key)
            self._refuse_removed(key, record)
            sha = _sha(store.read_image(record.image_path))
        current = effective_state(previous, sha)
        if kind == "fallback" and e.approved_in_manifest and current == "draft":
            current = "approved"
        review = decide(previous, kind, key, sha, state or current, by, note, self.core.now())
        if kind == "fallback" and review.state == "approved":
            archive = self.folder / ARCHIVE
            archive.mkdir(exist_ok=True)
            target = archive / f"{sha}.webp"
            if not target.exists():
                shutil.copyfile(path, target)
        store.put_review(review)
        approver = self.core.fallbacks.approver
        if approver is not None and hasattr(approver, "forget"):
            approver.forget()
        return review

    def rerender(self, key: str) -> dict[str, Any]:
        """Render one fallback asset again (its approval stays only if the image is unchanged)."""
        e = self._entry(key)
        return self.core.seed_fallbacks(only=[e.target], variants=[e.variant], force=True)


def _needs_review(record: AvatarRecord) -> bool:
    return record.status == "flagged" or bool(record.identity.get("drift"))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()

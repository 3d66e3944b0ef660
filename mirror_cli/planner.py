"""Users x command -> AvatarJobs, each with a stable request key. No provider calls here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from . import prompts, safety
from .config import ConfigSet, ModelEntry
from .errors import ConfigError, RunStoppedError, UsageError
from .imaging import Photo
from .models import PHOTO_ROLE, AvatarRecord, ImageRequest, Persona, Progress, Reference
from .pricing import estimate, output_tokens_estimate, per_image_output
from .providers.base import ImageProvider
from .stores.base import Store

KEY_SCHEMA = 1
LOOK_SCHEMA = 1
OK_STATUSES = ("ok", "flagged")
OUTPUT_FORMAT = "png"  # what providers are asked for (stored as WebP after post-processing)


def shown(record: AvatarRecord) -> bool:
    """An avatar the user may see: a good one that no report hides (mirror_cli/reporting.py)."""
    return record.status in OK_STATUSES and record.hidden_by is None


_PREVIOUS_STAGE = " Image 2 is the previous stage: keep the art style, framing and lighting continuous with it."


def safety_identifier(uid: str) -> str:
    """A stable, non-reversible id for the provider's abuse monitoring."""
    return hashlib.sha256(f"mirror-user:{uid}".encode()).hexdigest()[:32]


def request_key(
    uid: str,
    provider: str,
    entry: ModelEntry,
    renderer: str,
    style: str,
    req: ImageRequest,
    regeneration: int = 0,
) -> str:
    """sha256 of the canonical request: the same inputs give the same key on every machine,
    and anything that would change the picture changes the key."""
    canonical = {
        "schema": KEY_SCHEMA,
        "user": uid,
        "provider": provider,
        "model": entry.snapshot,
        "renderer": renderer,
        "style": style,
        "prompt": req.prompt,
        "references": [r.sha256 for r in req.references],
        "size": req.size,
        "quality": req.quality,
        "format": req.output_format,
        "input_fidelity": req.input_fidelity,
        "spec": req.spec.model_dump(mode="json") if req.spec else None,
    }
    if regeneration:  # absent for a first image: every key made before regeneration stays valid
        canonical["regeneration"] = regeneration
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class OutputSettings(Protocol):
    """The output settings of a request (an ``ImageRequest`` has them)."""

    @property
    def size(self) -> str: ...
    @property
    def quality(self) -> str: ...
    @property
    def output_format(self) -> str: ...


@dataclass(frozen=True)
class _Output:
    size: str
    quality: str
    output_format: str


def look_key(
    persona: Persona,
    target: str,
    stage: str,
    provider: str,
    entry: ModelEntry,
    renderer: str,
    style: str,
    req: OutputSettings,
    photo_sha: str | None,
) -> str:
    """What decides how a user's avatar of one stage looks, and nothing that merely moves with
    progress: the user and their appearance and personality, the stage, the style, model and
    renderer versions, the output settings and the photo it was drawn from. The cues chosen at
    the milestone belong to the avatar made then (its record keeps them): new metrics for a stage
    already drawn change nothing here, so they never buy a second image of it."""
    canonical = {
        "schema": LOOK_SCHEMA,
        "user": persona.id,
        "target": target,
        "stage": stage,
        "provider": provider,
        "model": entry.snapshot,
        "renderer": renderer,
        "style": style,
        "appearance": persona.appearance.model_dump(mode="json"),
        "personality": list(persona.personality),
        "size": req.size,
        "quality": req.quality,
        "format": req.output_format,
        "photo": photo_sha,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def avatar_id_for(uid: str, key: str) -> str:
    return hashlib.sha256(f"{uid}:{key}".encode()).hexdigest()[:20]


@dataclass
class Job:
    user_id: str
    target: str
    stage: str
    label: str
    persona: Persona
    progress: Progress
    request: ImageRequest
    request_key: str
    model_name: str
    model_entry: ModelEntry
    estimate_usd: float
    tokens_estimate: int
    parts: prompts.PromptParts
    previous: AvatarRecord | None = None
    # the identity anchor as the plan read it (the same-face check scores against it: no second listing)
    anchor: AvatarRecord | None = None
    blocked: list[str] = field(default_factory=list)
    edit: bool = False
    look_key: str | None = None
    # the avatar this user already has of this target with the same look: served, never bought again
    existing: AvatarRecord | None = None
    regeneration: int = 0
    # the person's photo the plan was given: every re-plan of the job (safe, reinforced) keeps it
    photo: Photo | None = None
    # the request is drawn from the person's photo (a spooled leftover's: as its entry says, even
    # when the photo is no longer here to draw from again)
    photo_drawn: bool = False

    @property
    def job_id(self) -> str:
        return f"{self.user_id}.{self.target}"

    @property
    def avatar_id(self) -> str:
        return avatar_id_for(self.user_id, self.request_key)


def effective_progress(configs: ConfigSet, progress: Progress, stage: str) -> Progress:
    """A stage earlier than the user's current one is drawn as it was: active days at that stage's
    threshold and none of the later goals or achievements."""
    table = configs.stages
    current = table.index(table.stage_for_days(progress.active_days))
    if table.index(stage) >= current:
        return progress
    return Progress(
        active_days=table.get(stage).from_day,
        goals_completed=0,
        major_achievement=None,
        achievement_areas=[],
        discovered_traits=progress.discovered_traits,
    )


class Planner:
    def __init__(
        self,
        configs: ConfigSet,
        store: Store,
        provider: ImageProvider,
        provider_name: str,
        model: str,
        quality: str | None,
        size: str | None,
        *,
        today: date,
    ) -> None:
        self.configs = configs
        self.store = store
        self.provider = provider
        self.provider_name = provider_name
        self.model_name = model
        self.entry = configs.model(model)
        self.quality = quality or configs.style.quality
        self.size = size or configs.style.size
        self._check_model(today)

    def _check_model(self, today: date) -> None:
        e, name = self.entry, self.model_name
        if e.lifecycle(today) == "shut_down":
            raise RunStoppedError(
                f"Model {name!r} was shut down on {e.shutdown_date}; no request was sent.",
                f"Use one of its replacements: {', '.join(e.replacements) or 'see configs/models.yaml'} "
                f"(--model or configs/models.yaml 'default').",
            )
        expected = self.provider_name.removesuffix("-batch")
        if e.provider != expected:
            raise ConfigError(
                f"Model {name!r} is served by the {e.provider!r} provider, not {self.provider_name!r}.",
                f"Pass --provider {e.provider}, or choose a {self.provider_name} model.",
            )
        if self.quality not in e.qualities:
            raise UsageError(
                f"Quality {self.quality!r} is not offered by {name}.",
                f"Use one of: {', '.join(e.qualities)}.",
            )
        if e.sizes == "flexible":
            self._check_flexible_size(self.size)
        elif self.size not in e.sizes:
            raise UsageError(f"Size {self.size!r} is not offered by {name}.", f"Use one of: {', '.join(e.sizes)}.")
        per_image_output(e, self.quality, self.size)  # a paid model without a price is refused now

    @staticmethod
    def _check_flexible_size(size: str) -> None:
        try:
            w, h = (int(x) for x in size.lower().split("x"))
        except ValueError:
            raise UsageError(f"Size {size!r} is not WIDTHxHEIGHT.", "Use e.g. --size 1024x1024.") from None
        ok = (
            w % 16 == 0
            and h % 16 == 0
            and max(w, h) <= 3840
            and max(w, h) / min(w, h) <= 3
            and 655_360 <= w * h <= 8_294_400
        )
        if not ok:
            raise UsageError(
                f"Size {size!r} is not allowed for this model.",
                "Both sides multiples of 16, long side <= 3840, ratio <= 3:1, "
                "655,360-8,294,400 pixels (e.g. 1024x1024).",
            )

    # ---------------------------------------------------------------------------------------
    def _history(
        self, uid: str, target: str, stage: str
    ) -> tuple[AvatarRecord | None, AvatarRecord | None, list[AvatarRecord]]:
        """(anchor, previous, the good avatars already made of ``target``) from one listing."""
        table = self.configs.stages
        made = [r for r in self.store.list_avatars(uid) if r.status in OK_STATUSES]
        same = [r for r in made if r.target == target]  # hidden ones too: made once, never re-bought unasked
        records = [r for r in made if shown(r)]  # a reported image is never drawn from
        if same:
            records = [r for r in records if r.created_at < same[0].created_at]
        anchor = records[0] if records else None
        idx = table.index(stage)
        earlier = [r for r in records if r.target in table.names and table.index(r.stage) < idx]
        return anchor, (earlier[-1] if earlier else None), same

    def stage_of(self, progress: Progress, target: str) -> str:
        """The stage whose look ``target`` (a stage, 'current' or a trilogy kind) is drawn with."""
        table = self.configs.stages
        if target in table.names:
            return target
        if target == "current":
            return table.stage_for_days(progress.active_days)
        return self.configs.style.trilogy[target].stage or table.stage_for_days(progress.active_days)

    def check_regeneration(self, persona: Persona, target: str) -> int:
        """Raise a user-worded error when ``target`` may not be regenerated for this user now."""
        stage = self.stage_of(persona.progress, target)
        return self._regeneration(persona.id, target, self._history(persona.id, target, stage)[2])

    def _regeneration(self, uid: str, target: str, same: list[AvatarRecord]) -> int:
        """The number of this explicit regeneration (1 for the first), within the configured limit."""
        allowed = self.configs.limits.regenerations_per_target
        done = len(same) - 1 if same else 0
        if not same:
            raise UsageError(
                f"User {uid!r} has no avatar of {target!r} yet: there is nothing to regenerate.",
                "Generate it without 'regenerate' first.",
            )
        if done >= allowed:
            raise UsageError(
                f"{target!r} of user {uid!r} was already regenerated {done} time(s), the limit of "
                "regenerations_per_target.",
                "Keep the current avatar, or raise regenerations_per_target in configs/limits.yaml.",
            )
        return done + 1

    def plan(
        self,
        persona: Persona,
        progress: Progress,
        target: str,
        *,
        photo: Photo | None = None,
        safe: bool = False,
        reinforce: bool = False,
        regenerate: bool = False,
    ) -> Job:
        """The job for one avatar. A user who already has ``target`` with the same look gets that
        avatar (``Job.existing``) whatever their progress now says; ``regenerate`` asks for one
        more paid image of it, counted against limits.regenerations_per_target."""
        table = self.configs.stages
        stage = self.stage_of(progress, target)
        drawn = effective_progress(self.configs, progress, stage) if target in table.names else progress
        label = self.configs.label(target)
        uses_refs = self.provider.capabilities.uses_references and self.entry.capabilities.edits

        anchor, previous, same = self._history(persona.id, target, stage)
        regeneration = self._regeneration(persona.id, target, same) if regenerate else 0
        references: list[Reference] = []
        ref_bytes: list[bytes] = []
        if uses_refs:
            stage_ref = previous if target in table.names else None
            references, ref_bytes = self._references(photo, anchor, stage_ref)
        edit = bool(references)

        parts = prompts.build(
            self.configs.style, persona, drawn, target, stage, label, edit=edit, safe=safe, reinforce=reinforce
        )
        if len(references) == 1:  # no previous stage among the images
            parts.prompt = parts.prompt.replace(_PREVIOUS_STAGE, "")
        request = self._request(persona, parts, references, ref_bytes)
        renderer, style = self._renderer, self._style
        key = request_key(persona.id, self.provider_name, self.entry, renderer, style, request, regeneration)
        look = self._look(persona, target, stage, _sha(photo.data) if photo is not None else None)
        # a record made before looks were kept is this stage's avatar until an explicit regenerate
        looks_same = [r for r in same if r.look_key in (look, None) and r.stage == stage]
        # a shown one first: a hidden image (reported, or flagged by moderation) answers only when
        # it is all there is
        existing = (
            None if regenerate or not looks_same else max(looks_same, key=lambda r: (r.hidden_by is None, r.created_at))
        )
        free_text = [*progress.discovered_traits, progress.major_achievement or "", persona.appearance.description]
        blocked = safety.screen([*free_text, *progress.achievement_areas])
        tokens = (
            output_tokens_estimate(self.entry, self.quality, self.size)
            + self.entry.prompt_tokens_estimate
            + len(references) * self.entry.reference_image_tokens
        )
        return Job(
            user_id=persona.id,
            target=target,
            stage=stage,
            label=label,
            persona=persona,
            progress=progress,
            request=request,
            request_key=key,
            model_name=self.model_name,
            model_entry=self.entry,
            estimate_usd=estimate(
                self.entry, self.quality, self.size, len(references), batch=self.provider_name.endswith("-batch")
            ),
            tokens_estimate=tokens,
            parts=parts,
            previous=previous,
            anchor=anchor,
            blocked=blocked,
            edit=edit,
            look_key=look,
            existing=existing,
            regeneration=regeneration,
            photo=photo,
            photo_drawn=any(ref.role == PHOTO_ROLE for ref in references),
        )

    def replan(self, job: Job, *, safe: bool = False, reinforce: bool = False) -> ImageRequest:
        """The job's request again, from exactly the inputs of its first plan (the person's photo
        among them) but for the safe prompt or the gate's reinforcement; its key stays the job's."""
        return self.plan(job.persona, job.progress, job.target, photo=job.photo, safe=safe, reinforce=reinforce).request

    @property
    def _style(self) -> str:
        return f"{self.configs.style.name}@{self.configs.style.version}"

    @property
    def _renderer(self) -> str:
        return self.provider.renderer_version

    def _look(self, persona: Persona, target: str, stage: str, photo_sha: str | None) -> str:
        output = _Output(self.size, self.quality, OUTPUT_FORMAT)
        return look_key(
            persona, target, stage, self.provider_name, self.entry, self._renderer, self._style, output, photo_sha
        )

    def look_of(self, persona: Persona, progress: Progress, target: str) -> tuple[str, str]:
        """(stage, look key) of ``target`` for this user now, without building the request: what
        ``plan`` would find in ``Job.stage`` and ``Job.look_key`` (no photo). The cached path of
        the server compares it with the user's latest avatar of the target."""
        stage = self.stage_of(progress, target)
        return stage, self._look(persona, target, stage, None)

    def _references(
        self, photo: Photo | None, anchor: AvatarRecord | None, previous: AvatarRecord | None
    ) -> tuple[list[Reference], list[bytes]]:
        """What the edit is drawn from: the person's photo, else the identity anchor; then the
        previous stage (``previous``: a stage target's only) when it is another image."""
        references: list[Reference] = []
        ref_bytes: list[bytes] = []

        def add(role: str, data: bytes, mime: str, avatar_id: str | None = None) -> None:
            references.append(Reference(role=role, sha256=_sha(data), mime=mime, avatar_id=avatar_id))
            ref_bytes.append(data)

        if photo is not None:
            add(PHOTO_ROLE, photo.data, photo.mime)
        elif anchor is not None:
            add("identity anchor", self.store.read_image(anchor.image_path), "image/webp", anchor.id)
        if previous is not None and references and previous.id != (anchor.id if anchor else None):
            add("previous stage", self.store.read_image(previous.image_path), "image/webp", previous.id)
        references = references[: self.entry.capabilities.max_references]
        return references, ref_bytes[: len(references)]

    def _request(
        self, persona: Persona, parts: prompts.PromptParts, references: list[Reference], ref_bytes: list[bytes]
    ) -> ImageRequest:
        edit = bool(references)
        fidelity = "high" if "high" in self.entry.capabilities.input_fidelity and edit else None
        return ImageRequest(
            model=self.entry.snapshot if self.provider_name != "local" else self.model_name,
            prompt=parts.prompt,
            size=self.size,
            quality=self.quality,
            output_format=OUTPUT_FORMAT,
            references=references,
            reference_bytes=ref_bytes,
            safety_identifier=safety_identifier(persona.id),
            spec=parts.spec,
            input_fidelity=fidelity,
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

"""Canary before a model, style or renderer change: re-render a fixed sample of real users'
latest stages with the candidate, score each against the avatar the user has now (the same-face
score and the quality gate), write a side-by-side review sheet, and record the result as a run.

The nightly run compares what it is about to use (its *fingerprint*: provider, model, style and
version, renderer version) with what the last nightly run used; on a change it refuses unless a
canary of exactly this fingerprint passed (median drift within the style's threshold), or the
operator overrides."""

from __future__ import annotations

import hashlib
import io
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, UsageError
from .models import AvatarRecord, Persona

if TYPE_CHECKING:
    from .core import Mirror
    from .wiring import Wiring

DEFAULT_SAMPLE = 8
CANARY_USER = "_canary"  # the ledger's name for what a canary paid (no user's timeline changes)
RUNS_LOOKED_AT = 200


def fingerprint(core: Wiring) -> dict[str, Any]:
    """What decides how every new avatar looks, beyond the user's own data."""
    style = core.configs.style
    provider = core.settings.provider
    fp: dict[str, Any] = {
        # the Batch API makes the same images as the sync API: not a change
        "provider": "openai" if provider == "openai-batch" else provider,
        "model": core.model_name,
        "style": style.name,
        "style_version": style.version,
        "renderer": core.provider.renderer_version,
    }
    fp["key"] = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]
    return fp


def _describe(fp: dict[str, Any]) -> str:
    return f"{fp['provider']}/{fp['model']}, style {fp['style']} v{fp['style_version']}, renderer {fp['renderer']}"


@dataclass
class CanaryRow:
    user_id: str
    stage: str
    avatar_id: str
    distance: float | None  # None: no face found in one of the two images (counted as drift)
    gate_ok: bool
    reused: bool  # the candidate's request is the current avatar's: nothing rendered
    detail: str = ""


@dataclass
class CanaryResult:
    fingerprint: dict[str, Any]
    threshold: float
    rows: list[CanaryRow] = field(default_factory=list)
    sheet: str | None = None
    run_id: str | None = None
    paid_usd: float = 0.0

    @property
    def median_drift(self) -> float | None:
        if not self.rows:
            return None
        return statistics.median(r.distance if r.distance is not None else float("inf") for r in self.rows)

    @property
    def passed(self) -> bool:
        median = self.median_drift
        return median is not None and median <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        median = self.median_drift
        return {
            "fingerprint": self.fingerprint,
            "threshold": self.threshold,
            "median_drift": None if median is None or median == float("inf") else round(median, 4),
            "passed": self.passed,
            "sampled": len(self.rows),
            "gate_failed": sum(not r.gate_ok for r in self.rows),
            "no_face": sum(r.distance is None for r in self.rows),
            "paid_usd": round(self.paid_usd, 6),
            "sheet": self.sheet,
            "run_id": self.run_id,
            "rows": [asdict(r) for r in self.rows],
        }


def sample(core: Mirror, n: int) -> list[tuple[Persona, AvatarRecord]]:
    """A fixed sample: users in the order of a hash of their id (the same users every time, spread
    over the whole store), each with their latest stage avatar; users without one are passed over."""
    stages = set(core.configs.stages.names)
    order = sorted(core.user_ids(), key=lambda u: hashlib.sha256(f"mirror-canary:{u}".encode()).hexdigest())
    out: list[tuple[Persona, AvatarRecord]] = []
    for uid in order:
        latest = [r for r in core.timeline(uid) if r.target in stages]
        if latest:
            out.append((core.persona(uid), latest[-1]))
        if len(out) >= n:
            break
    return out


def run_canary(candidate: Mirror, *, size: int = DEFAULT_SAMPLE, sheet: Path | None = None) -> CanaryResult:
    """Re-render the sample with ``candidate`` (a core opened with the candidate's settings, on the
    real store), score, write the sheet and record the result as a 'canary' run."""
    from .clock import today
    from .usecases.runs import start_run

    if size < 1 or size > 200:
        raise UsageError(f"A canary samples 1 to 200 users, not {size}.", "Pass --sample N within 1-200.")
    threshold = candidate.configs.style.identity.threshold
    fp = fingerprint(candidate)
    picked = sample(candidate, size)
    if not picked:
        raise UsageError(
            "No user has a stage avatar yet: there is nothing to compare a candidate with.",
            "Run 'mirror evolve' (or 'generate') for some users first.",
        )
    result = CanaryResult(fp, threshold)
    pairs = candidate.run_async(_render_all(candidate, picked, result, threshold))
    out = sheet or candidate.settings.data_dir / "canary" / f"canary-{fp['key']}.png"
    _write_sheet(pairs, result, out, candidate.configs.label)
    result.sheet = str(out)
    run = start_run(candidate, "canary", {"fingerprint": fp, "day": today(candidate.now).isoformat()}, None)
    summary = result.to_dict()
    run.params.update({k: summary[k] for k in ("threshold", "median_drift", "passed", "sheet", "paid_usd")})
    run.state = "finished"
    run.counts = {k: summary[k] for k in ("sampled", "gate_failed", "no_face")}
    candidate.store.update_run(run)
    result.run_id = run.id
    return result


async def _render_all(
    core: Mirror, picked: list[tuple[Persona, AvatarRecord]], result: CanaryResult, threshold: float
) -> list[tuple[bytes, bytes | None]]:
    from PIL import Image

    from . import identity
    from .pipeline import paid_event, render_asset

    planner = core.planner()
    pipeline = core.pipeline(planner)
    scoring, why = identity.available_once()
    pairs: list[tuple[bytes, bytes | None]] = []
    for persona, record in picked:
        current = await pipeline.io(core.store.read_image, record.image_path)
        job = await pipeline.io(planner.plan, persona, persona.progress, record.target)
        if job.request_key == record.request_key:  # the candidate asks for exactly this image
            result.rows.append(CanaryRow(persona.id, record.stage, record.id, 0.0, True, True))
            pairs.append((current, current))
            continue
        rendered, webp, verdict, paid = await render_asset(pipeline, job)
        pipeline.spool.remove(job.user_id, job.request_key)
        if paid and rendered.cost_usd:
            result.paid_usd += rendered.cost_usd
            event = paid_event(CANARY_USER, record.target, job.request_key, rendered, at=core.now(), kind="generated")
            await pipeline.io(core.store.record_event, event, event_id=f"paid:{CANARY_USER}:{job.request_key}")
        if scoring:
            img = Image.open(io.BytesIO(webp))
            score = await pipeline.io(identity.score, current, record.id, img, threshold)
            distance, detail = score.distance, score.detail
        else:
            distance, detail = None, why
        result.rows.append(CanaryRow(persona.id, record.stage, record.id, distance, verdict.ok, False, detail))
        pairs.append((current, webp))
    return pairs


def _write_sheet(pairs: list[tuple[bytes, bytes | None]], result: CanaryResult, out: Path, label: Any) -> None:
    from PIL import Image

    from .imaging import contact_sheet, decode

    tiles: list[tuple[Image.Image | None, str, str]] = []
    for (now, cand), row in zip(pairs, result.rows, strict=True):
        d = "no face" if row.distance is None else f"face {row.distance:.2f}"
        verdict = "drift" if row.distance is None or row.distance > result.threshold else "same face"
        tiles.append((decode(now), f"{row.user_id} · {label(row.stage)}", "now"))
        tiles.append(
            (
                decode(cand) if cand else None,
                f"{d} · {verdict}" + ("" if row.gate_ok else " · gate failed"),
                "candidate (unchanged request)" if row.reused else "candidate",
            )
        )
    median = result.median_drift
    shown = "no face found" if median is None or median == float("inf") else f"{median:.2f}"
    fp = result.fingerprint
    title = (
        f"Canary · {fp['model']} · {fp['style']} v{fp['style_version']} · median {shown} "
        f"(threshold {result.threshold:.2f}) · {'PASS' if result.passed else 'BLOCK'}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tiles, title, columns=4, tile=240).save(out)


# ------------------------------------------------------------------------------ nightly gate
def _last(core: Wiring, command: str, want: Any) -> Any:
    for run in core.store.list_runs(RUNS_LOOKED_AT):
        if run.command == command and run.state == "finished" and want(run):
            return run
    return None


def nightly_guard(core: Wiring, override: bool = False) -> dict[str, Any]:
    """Refuse a nightly run whose fingerprint changed since the last nightly run unless a canary
    of exactly this fingerprint passed (or ``override``). Returns the fingerprint to record."""
    fp = fingerprint(core)
    before = _last(core, "evolve", lambda r: r.params.get("due") and r.params.get("fingerprint"))
    if before is None or before.params["fingerprint"].get("key") == fp["key"] or override:
        return fp
    old = before.params["fingerprint"]
    canary = _last(core, "canary", lambda r: (r.params.get("fingerprint") or {}).get("key") == fp["key"])
    change = f"The nightly run would change how avatars are made: {_describe(old)} -> {_describe(fp)}."
    flags = _candidate_flags(old, fp)
    if canary is None:
        raise ConfigError(
            change + " No canary was run for this change.",
            f"Run 'mirror canary{flags}' and look at its sheet, or pass --override-canary to go ahead anyway.",
        )
    if not canary.params.get("passed"):
        median = canary.params.get("median_drift")
        shown = "no face found" if median is None else f"{median:.2f}"
        raise ConfigError(
            change + f" Its canary ({canary.id}) measured a median drift of {shown}, over the style's "
            f"threshold {canary.params.get('threshold')}: users' faces would change overnight.",
            f"Look at {canary.params.get('sheet')}; keep the current settings, or pass --override-canary.",
        )
    return fp


def _candidate_flags(old: dict[str, Any], new: dict[str, Any]) -> str:
    flags = ""
    if old.get("model") != new.get("model"):
        flags += f" --model {new['model']}"
    if old.get("style") != new.get("style") or old.get("style_version") != new.get("style_version"):
        flags += f" --style {new['style']}"
    if old.get("renderer") != new.get("renderer"):
        flags += f" --renderer-version {new['renderer']}"
    return flags

"""``mirror seed-fallbacks``: render the shared fallback set (one asset per variant and stage)
into the user's project, skip assets whose request and file are unchanged, keep the manifest and
a contact sheet, and book every paid image in the ledger."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import FallbackVariant
from ..errors import UsageError
from ..models import Appearance, Persona, Progress
from ..pipeline import Pipeline
from ..planner import Job, Planner
from ..stores.base import JobState, JobStateName, RunInfo
from ..wiring import Wiring
from .runs import start_run

ManifestEntries = dict[tuple[str, str], dict[str, Any]]


@dataclass
class SeedPlan:
    folder: Path
    existing: ManifestEntries  # (stage, variant) -> manifest entry
    jobs: list[tuple[FallbackVariant, str, Job]] = field(default_factory=list)
    unchanged: int = 0
    estimate_usd: float = 0.0

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"


def _targets(w: Wiring, only: list[str] | None) -> list[str]:
    table = w.configs.stages
    return [table.parse_target(t) for t in only] if only else [*table.names, *table.trilogy]


def _variants(w: Wiring, names: list[str] | None) -> list[FallbackVariant]:
    every = w.configs.fallbacks.variants
    if names:
        known = {v.name for v in every}
        unknown = [v for v in names if v not in known]
        if unknown:
            raise UsageError(
                f"Unknown variant(s): {', '.join(unknown)}.",
                f"Use names from fallbacks.yaml: {', '.join(sorted(known))}.",
            )
    return [v for v in every if not names or v.name in names]


def _folder(w: Wiring, out: Path | None) -> Path:
    """Never the installed package unless ``out`` names it explicitly (a source checkout)."""
    from ..resources import is_inside_package

    root = out or w.settings.fallback_dir
    if out is None and is_inside_package(root):
        raise UsageError(
            f"The fallback folder {root} is inside the installed package, which is read-only.",
            "Point --fallback-dir / MIRROR_FALLBACK_DIR at your project (see 'mirror init'), or pass --out DIR.",
        )
    return root / w.configs.style.name


def _persona(w: Wiring, variant: FallbackVariant, target: str) -> Persona:
    table = w.configs.stages
    stage = target if target in table.names else "month"
    progress = Progress(active_days=table.get(stage).from_day)
    look = {"skin": variant.skin, "hair_style": variant.hair_style, "hair_color": variant.hair_color}
    appearance = Appearance.model_validate({**look, "hoodie_color": "#C8553D"})
    return Persona(id=f"fallback-{variant.name}", name="Friend", appearance=appearance, progress=progress)


def _unchanged(plan: SeedPlan, old: dict[str, Any] | None, job: Job) -> bool:
    if not old or old.get("request_key") != job.request_key:
        return False
    path = plan.folder / old["file"]
    return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == str(old["sha256"])


def plan_seed(
    w: Wiring, planner: Planner, targets: list[str], variants: list[FallbackVariant], folder: Path, force: bool
) -> SeedPlan:
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"entries": []}
    plan = SeedPlan(folder, {(e["stage"], e["variant"]): e for e in manifest["entries"]})
    for variant in variants:
        for target in targets:
            persona = _persona(w, variant, target)
            job = planner.plan(persona, persona.progress, target)
            if not force and _unchanged(plan, plan.existing.get((target, variant.name)), job):
                plan.unchanged += 1
                continue
            plan.estimate_usd += job.estimate_usd
            plan.jobs.append((variant, target, job))
    return plan


def _entry(w: Wiring, variant: FallbackVariant, target: str, job: Job, webp: bytes, result: Any, ok: bool) -> Any:
    return {
        "stage": target,
        "variant": variant.name,
        "file": f"{target}/{variant.name}.webp",
        "sha256": hashlib.sha256(webp).hexdigest(),
        "size": len(webp),
        "width": 1024,
        "height": 1024,
        "provider": result.provider,
        "model": result.model,
        "prompt": job.request.prompt,
        "created": w.now().isoformat(),
        "request_key": job.request_key,
        "quality_gate": ok,
        "traits": {"skin": variant.skin, "hair_style": variant.hair_style, "hair_color": variant.hair_color},
    }


async def _render(w: Wiring, pipeline: Pipeline, run: RunInfo, plan: SeedPlan) -> None:
    from ..pipeline import paid_event, render_asset

    def state(job_id: str, target: str, job: Job, status: JobStateName, file: str | None) -> JobState:
        return JobState(run.id, job_id, "_fallbacks", target, status, job.request_key, None, file, w.now())

    for variant, target, job in plan.jobs:
        job_id = f"{variant.name}.{target}"
        await pipeline.io(w.store.put_job_state, state(job_id, target, job, "in_flight", None))
        result, webp, verdict, paid = await render_asset(pipeline, job)
        entry = _entry(w, variant, target, job, webp, result, verdict.ok)
        (plan.folder / target).mkdir(parents=True, exist_ok=True)
        (plan.folder / entry["file"]).write_bytes(webp)
        plan.existing[(target, variant.name)] = entry
        if paid and result.cost_usd:
            event = paid_event("_fallbacks", target, job.request_key, result, at=w.now(), validation_ok=verdict.ok)
            await pipeline.io(w.store.record_event, event, event_id=f"paid:_fallbacks:{job.request_key}")
        pipeline.spool.remove(job.user_id, job.request_key)
        await pipeline.io(w.store.put_job_state, state(job_id, target, job, "done", entry["file"]))


def _write_manifest(w: Wiring, plan: SeedPlan) -> None:
    entries = sorted(plan.existing.values(), key=lambda e: (e["variant"], e["stage"]))
    manifest = {"style": w.configs.style.name, "style_version": w.configs.style.version, "entries": entries}
    plan.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _contact_sheet(w: Wiring, plan: SeedPlan) -> Path:
    from ..imaging import contact_sheet, decode

    table = w.configs.stages
    order = [*table.names, *table.trilogy]
    tiles = [
        (decode((plan.folder / e["file"]).read_bytes()), f"{w.configs.label(e['stage'])}", e["variant"])
        for e in sorted(plan.existing.values(), key=lambda e: (e["variant"], order.index(e["stage"])))
    ]
    path = plan.folder / "contact-sheet.png"
    contact_sheet(tiles, f"Fallback set · {w.configs.style.name}", columns=len(order), tile=200).save(path)
    return path


def seed_fallbacks(
    w: Wiring,
    *,
    only: list[str] | None = None,
    variants: list[str] | None = None,
    dry_run: bool = False,
    out: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Render the shared fallback set into the user's project (``fallback_dir``) or ``out``."""
    w.estimating = w.estimating or dry_run
    targets, chosen = _targets(w, only), _variants(w, variants)
    folder = _folder(w, out)
    planner = w.planner()
    pipeline = w.pipeline(planner)
    plan = plan_seed(w, planner, targets, chosen, folder, force)
    run: RunInfo | None = None
    if not dry_run:
        run = start_run(w, "seed-fallbacks", {"only": only, "variants": variants}, None)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            w.run_async(_render(w, pipeline, run, plan))
        finally:
            _write_manifest(w, plan)
        run.state, run.counts = "finished", {"generated": len(plan.jobs), "unchanged": plan.unchanged}
        w.store.update_run(run)
        if plan.existing:
            _contact_sheet(w, plan)
    return _summary(plan, run, dry_run)


def _summary(plan: SeedPlan, run: RunInfo | None, dry_run: bool) -> dict[str, Any]:
    sheet = plan.folder / "contact-sheet.png"
    return {
        "run_id": run.id if run else None,
        "manifest": str(plan.manifest_path),
        "contact_sheet": str(sheet) if sheet.exists() else None,
        "rendered": 0 if dry_run else len(plan.jobs),
        "planned": len(plan.jobs),
        "unchanged": plan.unchanged,
        "estimate_usd": round(plan.estimate_usd, 6),
        "dry_run": dry_run,
        "jobs": [
            {
                "variant": v.name,
                "target": t,
                "status": "planned" if dry_run else "generated",
                "estimate_usd": round(j.estimate_usd, 6),
                "file": f"{t}/{v.name}.webp",
            }
            for v, t, j in plan.jobs
        ],
    }

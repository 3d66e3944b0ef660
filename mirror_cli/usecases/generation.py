"""The paid operations: one stage for users, the next stages of one user or of everyone due,
and the trilogy. Each plans its jobs and hands them to ``runs.execute``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..consent import require_consent
from ..erasure import finish_pending_erasures
from ..errors import UsageError
from ..imaging import Photo, intake_photo, intake_photo_bytes
from ..models import AvatarRecord, Persona, Progress, validate_user_id
from ..pipeline import JobSpec, RunReport
from ..planner import OK_STATUSES, Planner, shown
from ..wiring import Wiring
from .due import evolve_specs, nightly_tick, plan_tick
from .runs import execute, start_run
from .shards import Shard
from .users import persona, progress_changed, set_progress, user_ids


async def generate(
    w: Wiring,
    users: list[str] | None,
    target: str,
    *,
    dry_run: bool = False,
    max_cost: float | None = None,
    shard: Shard | None = None,
    resume: str | None = None,
    regenerate: bool = False,
) -> RunReport:
    """``regenerate``: one more paid image of a target each user already has (a person asked
    for it; limits.regenerations_per_target bounds it). Otherwise a target a user already has
    with the same look is served as it is, whatever their progress says now."""
    w.estimating = w.estimating or dry_run
    target = w.configs.stages.parse_target(target)
    batch = users is None
    uids = list(user_ids(w, shard)) if batch else [validate_user_id(u) for u in users or []]
    personas, skipped = await _profiles(w, uids, batch)
    if regenerate and batch:
        raise UsageError("Regenerate is for named users, not --all.", "Pass --user U (repeatable) with --regenerate.")
    if regenerate and not dry_run:  # refused before anything runs (the limit, nothing to redo)
        planner = w.planner()
        for p in personas:
            await w.store_calls(planner.check_regeneration, p, target)
    specs = [JobSpec(p, p.progress, target, regenerate=regenerate) for p in personas]
    run = None
    if batch and not dry_run:
        run = start_run(w, "generate", {"target": target, "all": True}, resume)
    return await execute(w, specs, dry_run=dry_run, run=run, max_cost=max_cost, skipped=skipped)


def cached_avatar(w: Wiring, planner: Planner, uid: str, target: str, progress: Progress | None) -> AvatarRecord | None:
    """The avatar a generate of ``target`` (no regenerate) would answer from the cache, found
    with two reads by key — the profile, and the user's newest good avatar of the target — and no
    write but fresh metrics (stored as a generate stores them). It is that avatar only when it is
    visible (status ok, no report hides it, moderation neither flagged it nor left it pending) and
    has the look the user has now: the newest shown avatar of a target with this look is what
    ``Planner.plan`` serves as ``Job.existing``. None: the full path decides (no or bad profile,
    no avatar, another look, an avatar that is not shown or made before looks were kept)."""
    try:
        who = w.store.get_user(validate_user_id(uid))
    except UsageError:  # a profile that does not validate: the full path names it
        return None
    if who is None:
        return None
    if progress is not None and progress_changed(who.progress, progress):
        who = set_progress(w, uid, progress, current=who)
    stage, look = planner.look_of(who, who.progress, target)
    record = w.store.latest_avatar(uid, target, OK_STATUSES)
    if record is None or record.look_key != look or record.stage != stage:
        return None
    checked = record.moderation is None or record.moderation.shown  # never a pending or flagged image
    return record if record.status == "ok" and shown(record) and checked else None


async def _profiles(w: Wiring, uids: list[str], batch: bool) -> tuple[list[Persona], dict[str, str]]:
    """The users' profiles; in a batch, one whose stored profile does not validate is skipped
    with the reason (a named user's is an error)."""
    found: list[Persona] = []
    skipped: dict[str, str] = {}
    for uid in uids:
        try:
            found.append(await w.store_calls(persona, w, uid))
        except UsageError as exc:
            if not batch:
                raise
            skipped[uid] = exc.message
    return found, skipped


async def trilogy(
    w: Wiring, uid: str, photo: Path | bytes | None = None, *, dry_run: bool = False, max_cost: float | None = None
) -> RunReport:
    """``photo``: a file (the CLI) or the bytes of an upload (the server), through the same intake."""
    w.estimating = w.estimating or dry_run
    who = await w.store_calls(persona, w, uid)
    limits = w.configs.limits.photo
    pic: Photo | None = None
    if isinstance(photo, bytes):
        pic = await asyncio.to_thread(intake_photo_bytes, photo, limits)
    elif photo is not None:
        pic = await asyncio.to_thread(intake_photo, photo, limits)
    if pic is not None:
        require_consent(who, "photo")  # a photo checked here never leaves without consent
    specs = [JobSpec(who, who.progress, kind, pic) for kind in w.configs.stages.trilogy]
    return await execute(w, specs, dry_run=dry_run, max_cost=max_cost)


async def evolve(
    w: Wiring,
    uid: str | None,
    *,
    due: bool = False,
    to: str | None = None,
    dry_run: bool = False,
    max_cost: float | None = None,
    shard: Shard | None = None,
    resume: str | None = None,
    any_hour: bool = False,
    override_canary: bool = False,
) -> RunReport:
    """``due``: one nightly tick, serving the due users inside their local window (every due
    user with ``any_hour``). A tick whose model, style or renderer changed since the last one
    needs a passing canary (mirror_cli/canary.py) or ``override_canary``."""
    w.estimating = w.estimating or dry_run
    if not due and uid is None:
        raise UsageError("Nothing to evolve.", "Pass --user U, or --due for every user who crossed a milestone.")
    if due and to:
        raise UsageError("--to cannot be combined with --due.", "Force a stage for one user at a time.")
    if any_hour and not due:
        raise UsageError("--any-hour goes with --due.", "Add --due, or drop --any-hour.")
    plan = None
    fingerprint: dict[str, Any] | None = None
    if due and not dry_run:
        from ..canary import nightly_guard

        fingerprint = await w.store_calls(nightly_guard, w, override_canary)
    erasures: dict[str, Any] | None = None
    if due and not dry_run and (shard is None or shard.index == 0):
        # erasures a crash left half-done are finished before anything is planned (shard 0 only)
        erasures = await w.store_calls(finish_pending_erasures, w)
    if due:
        plan = await w.store_calls(plan_tick, w, shard, any_hour=any_hour, dry_run=dry_run)
        specs = plan.specs
    else:
        who = await w.store_calls(persona, w, uid or "")
        specs = await w.store_calls(evolve_specs, w, who, to)
    run = None
    if due and not dry_run:
        params = {"due": True, "any_hour": any_hour, "fingerprint": fingerprint, "override_canary": override_canary}
        run = start_run(w, "evolve", params, resume)
    skipped = plan.skipped if plan is not None else None
    report = await execute(w, specs, dry_run=dry_run, run=run, max_cost=max_cost, skipped=skipped)
    if plan is not None:
        if not dry_run and report.store_error is None:  # a stalled store: the users stay due
            await w.store_calls(nightly_tick(w).finish, plan, report.outcomes)
        report.tick = plan.summary(None if dry_run else report.outcomes)
        if erasures is not None and (erasures["finished"] or erasures["failed"]):
            report.tick["erasures"] = erasures
    return report

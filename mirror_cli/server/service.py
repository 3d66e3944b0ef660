"""The server's one long-lived object: the core, the token verifier, the jobs and the limits.

Handlers stay thin: they authorise, then call a method here, which calls the same ``Mirror``
core as the CLI and turns its report into a response body or a problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..clock import wall_clock
from ..core import Mirror
from ..errors import MirrorError, PhotoError, UnknownUserError
from ..jobs import Outcome, RunReport
from ..models import Progress
from ..planner import shown
from .auth import Caller, TokenVerifier
from .cached import CachedGenerate, SignedUrls
from .degrade import evolve_avatars
from .durable import DurableJobs
from .guards import RateLimiter
from .hits import HitCounter
from .jobs import Job, Jobs, Result
from .problems import ProblemError, from_error, internal
from .visible import still_shown

if TYPE_CHECKING:
    from ..worker import Handler

log = logging.getLogger("mirror.serve")

POLL_AFTER_S = 2


class Service:
    def __init__(self, core: Mirror, verifier: TokenVerifier | None) -> None:
        """``verifier`` None: a queue worker's service, which runs jobs and answers no caller."""
        from .queued import QueuedJobs

        self.core = core
        self.settings = core.settings
        self.verifier = verifier
        self.jobs = Jobs()
        self.durable = DurableJobs(core, self.jobs, core.configs.limits.claims.lease_s)
        self.queued = QueuedJobs(self)
        self.limiter = RateLimiter(self.settings.serve_rate_per_minute)
        self.urls = SignedUrls(lambda ref: core.store.image_url(ref), self.settings.signed_url_ttl_s, core.now)
        self.hits = HitCounter(lambda: core.store, core.store_calls, core.now)
        self.cached = CachedGenerate(core, self.urls, self.hits)
        self._ready: tuple[float, bool, dict[str, str]] | None = None

    # ------------------------------------------------------------------------------ callers
    async def caller(self, authorization: str | None) -> Caller:
        assert self.verifier is not None, "a worker's service answers no caller"
        caller = await self.verifier.caller(authorization)
        self.limiter.take(caller.uid)
        return caller

    # --------------------------------------------------------------------------------- jobs
    async def run(self, key: str, caller: Caller, kind: str, params: dict[str, Any]) -> tuple[Job, bool]:
        """Start (or join) the job for ``key`` and wait up to serve_wait_s for it; a job that is
        not done by then is written to the store and published on the queue before its 202 leaves:
        any instance answers its poll, and a worker finishes it if this instance cannot."""
        work = self.work_for(kind, params)
        assert work is not None, kind
        if not self.jobs.accepting:
            raise ProblemError(
                503,
                "shutting-down",
                "Server shutting down",
                "This server is shutting down and takes no new generations.",
                "Retry: another instance will answer.",
                retry_after_s=5,
            )
        job, joined = self.jobs.submit(key, caller.uid, kind, lambda: self._guard(work), params)
        if not await self.jobs.wait(job, self.settings.serve_wait_s) and not job.persisted:
            await self.durable.persist(job)
            await self.queued.publish(job)
        return job, joined

    def guarded_work(self, kind: str, params: dict[str, Any]) -> Callable[[], Awaitable[Result]] | None:
        """A stored job's work, every failure turned into its problem answer (None: not re-runnable)."""
        work = self.work_for(kind, params)
        return (lambda: self._guard(work)) if work is not None else None

    def work_for(self, kind: str, params: dict[str, Any]) -> Callable[[], Awaitable[Result]] | None:
        """The work of a job from its parameters (None: it cannot be run again, a photo is not kept)."""
        uid = params["user_id"]
        progress = Progress.model_validate(params["progress"]) if params.get("progress") else None
        if kind == "generate":
            return lambda: self.generate(uid, params["target"], progress, bool(params.get("regenerate")))
        if kind == "evolve":
            return lambda: self.evolve(uid, progress)
        photo: bytes | None = params.get("photo")
        if kind == "trilogy" and (photo is not None or not params.get("photo_sha")):
            return lambda: self.trilogy(uid, photo)
        return None

    async def poll(self, job_id: str, caller: Caller) -> tuple[Job | None, Result | None]:
        """A job by id, from this instance or the store: (a running job here, or its stored answer
        / a 202 while another instance runs it). Raises 404 only for a job that does not exist."""
        found = self.jobs.get(job_id)
        if found is not None and caller.may_act_on(found.owner):
            if found.done:  # finished maybe long ago: an avatar hidden since is not answered
                return None, await self._still_shown(found.result(), found.params, found.owner)
            return found, None
        stored = await self.durable.stored(job_id)
        if stored is None or not caller.may_act_on(stored.owner):
            raise ProblemError(
                404,
                "unknown-job",
                "Unknown job",
                f"No job {job_id[:64]!r} for this user.",
                "Send the original request again: it answers from the cache, or waits for the image "
                "still being made; it is never paid twice.",
            )
        if stored.state == "done" and stored.status is not None:
            answered = Result(stored.status, stored.body or {}, stored.headers)
            return None, await self._still_shown(answered, stored.params, stored.owner)
        if stored.lease_until < wall_clock():
            taken = await self.durable.take_over(stored, self.guarded_work(stored.kind, stored.params))
            if taken is not None:
                await self.jobs.wait(taken, self.settings.serve_wait_s)
                return taken, None
        return None, None

    async def _still_shown(self, result: Result, params: dict[str, Any], owner: str) -> Result:
        uid = str(params.get("user_id") or owner)
        checked: Result = await self.core.store_calls(still_shown, self.core.store, self.urls, uid, result)
        return checked

    async def _guard(self, work: Callable[[], Awaitable[Result]]) -> Result:
        try:
            return await work()
        except ProblemError as p:
            return _problem_result(p)
        except MirrorError as err:
            return _problem_result(from_error(err))
        except Exception:
            log.exception("job failed")
            return _problem_result(internal())

    # ---------------------------------------------------------------------------- commands
    async def generate(self, uid: str, target: str, progress: Progress | None, regenerate: bool = False) -> Result:
        started = time.perf_counter()
        await self._update_progress(uid, progress)
        with _profile_needed(uid):
            report = await self.core.agenerate([uid], target, regenerate=regenerate)
        outcome = self._check(report, degrade=True)[0]
        if outcome.status == "failed":  # a provider outage: a fallback now, the real one through the queue
            return Result(200, await self.queued.outage(outcome, started, regenerate))
        return Result(200, self.avatar(outcome, started))

    async def evolve(self, uid: str, progress: Progress | None) -> Result:
        started = time.perf_counter()
        await self._update_progress(uid, progress)
        report = await self.core.aevolve(uid)
        outcomes = self._check(report, degrade=True)  # an outage: stand-ins now, the stages via the queue
        return Result(
            200,
            {
                "evolved": bool(outcomes),
                "current_stage": await self.core.store_calls(self.core.latest_stage, uid),
                "avatars": await evolve_avatars(self, outcomes, started),
            },
        )

    async def trilogy(self, uid: str, photo: bytes | None) -> Result:
        started = time.perf_counter()
        with _profile_needed(uid):
            report = await self.core.atrilogy(uid, photo)
        outcomes = self._check(report)
        return Result(200, {"avatars": [self.avatar(o, started) for o in outcomes]})

    async def _update_progress(self, uid: str, progress: Progress | None) -> None:
        with _profile_needed(uid):
            persona = await self.core.store_calls(self.core.persona, uid)
        if progress is None:
            return
        if persona.progress.model_dump(exclude={"updated_at"}) != progress.model_dump(exclude={"updated_at"}):
            await self.core.store_calls(self.core.set_progress, uid, progress)

    def _check(self, report: RunReport, degrade: bool = False) -> list[Outcome]:
        """Limits answer 429 with Retry-After, a stopped run 503, a failed job 502 (``degrade``:
        a failed job is returned, for a fallback answer)."""
        for o in report.outcomes:
            if o.limit:
                wait = retry_after(o.limit, self.core.now())
                raise ProblemError(
                    429,
                    "limit-reached",
                    "Limit reached",
                    o.reason or f"limit {o.limit}",
                    f"Try again in {wait} s (Retry-After): daily limits reset at 00:00 UTC, "
                    "the monthly budget on the 1st.",
                    retry_after_s=wait,
                )
        if report.stopped:
            raise ProblemError(
                503,
                "generation-stopped",
                "Generation stopped",
                f"Generation is stopped: {report.stopped}.",
                "The operator has been told by the ledger; try again later.",
                retry_after_s=300,
            )
        for o in report.outcomes:
            if o.status == "failed" and (o.reason or "").startswith("in flight in another process"):
                raise ProblemError(
                    503,
                    "in-flight-elsewhere",
                    "Being made elsewhere",
                    "This avatar is still being made by another server; it will not be paid twice.",
                    "Ask again in a minute: the answer will then come from the cache.",
                    retry_after_s=60,
                )
            if o.status == "failed":
                log.warning("generation failed for %s/%s: %s", o.user_id, o.target, o.reason)
                if degrade:
                    continue
                raise ProblemError(
                    502,
                    "generation-failed",
                    "Image provider failed",
                    "The image could not be made this time; nothing was charged for it.",
                    "Try again in a minute.",
                    retry_after_s=60,
                )
        return report.outcomes

    def avatar(self, o: Outcome, started: float) -> dict[str, Any]:
        record = o.record
        own_image = record is not None and o.served_path == record.image_path
        return {
            "avatar_id": record.id if record else None,
            "image_url": self.signed_url(record.image_path) if own_image and record else None,
            "ithere_message": o.message or (record.message if record else ""),
            "cached": o.status in ("cached", "ingested"),
            "generation_time": round(time.perf_counter() - started, 3),
            "cost": round(o.cost_usd, 6),
            "status": o.status,
            "evolution_stage": record.stage if record else None,
            "target": o.target,
            "reason": o.reason,
            # the user's own image is not shown: a fallback picture (a limit, an outage, or image
            # moderation kept the paid image hidden)
            "is_fallback": not own_image,
        }

    # ------------------------------------------------------------------------------- reads
    def signed_url(self, ref: str) -> str:
        """Signed URLs are reused while more than half their lifetime is left (``SignedUrls``)."""
        return self.urls(ref)

    async def avatars(self, uid: str, limit: int, cursor: str | None) -> dict[str, Any]:
        page: dict[str, Any] = await self.core.store_calls(self._avatars, uid, limit, cursor)
        return page

    def _avatars(self, uid: str, limit: int, cursor: str | None) -> dict[str, Any]:
        records = [r for r in self.core.store.list_avatars(uid) if shown(r)]
        records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        start = 0
        if cursor:
            ids = [r.id for r in records]
            if cursor not in ids:
                raise ProblemError(
                    400,
                    "bad-cursor",
                    "Unknown cursor",
                    f"Cursor {cursor[:40]!r} is not an avatar of this user.",
                    "Start again without a cursor.",
                )
            start = ids.index(cursor) + 1
        page = records[start : start + limit]
        more = start + limit < len(records)
        return {
            "items": [
                {
                    "avatar_id": r.id,
                    "image_url": self.signed_url(r.image_path),
                    "evolution_stage": r.stage,
                    "target": r.target,
                    "created_at": r.created_at.astimezone(UTC).isoformat(),
                    "cached": False,
                    "ithere_message": r.message,
                    "generation_time": round(r.timings.total_s or 0.0, 3) if r.timings else 0.0,
                }
                for r in page
            ],
            "next_cursor": page[-1].id if more and page else None,
        }

    async def usage(self, period: str, user: str | None) -> dict[str, Any]:
        figures = await self.core.store_calls(self.core.usage, period=period, user=user)
        result: dict[str, Any] = figures.to_dict()
        return result

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Store and provider reachable; remembered 30 s so probes cost the provider nothing."""
        now = time.monotonic()
        if self._ready is not None and self._ready[0] > now:
            return self._ready[1], self._ready[2]
        checks: dict[str, str] = {}
        try:
            await self.core.store_calls(self.core.store.op_counts, self.core.now().strftime("%Y-%m-%d"))
            checks["store"] = "ok"
        except Exception as exc:  # the details go to the log: the probe is public
            log.warning("readyz: store: %s", exc.message if isinstance(exc, MirrorError) else type(exc).__name__)
            checks["store"] = "unavailable"
        try:
            check = getattr(self.core.provider, "check", None)
            results = await asyncio.wait_for(check(self.core.model_name), 10) if check else []
            bad = [r for r in results if r.get("status") == "fail"]
            if bad:
                log.warning("readyz: provider: %s", bad[0].get("detail"))
            checks["provider"] = "ok" if not bad else "unavailable"
        except Exception as exc:
            log.warning("readyz: provider: %s", exc.message if isinstance(exc, MirrorError) else type(exc).__name__)
            checks["provider"] = "unavailable"
        ok = all(v == "ok" for v in checks.values())
        self._ready = (now + 30, ok, checks)
        return ok, checks


def worker_handlers(core: Mirror) -> dict[str, Handler]:
    """What `mirror worker` runs besides the nightly jobs: the app's 202 jobs, through a Service
    of its own (no caller is ever answered by it)."""
    from .queued import APP_JOB

    return {APP_JOB: Service(core, None).queued.handle}


@contextlib.contextmanager
def _profile_needed(uid: str) -> Iterator[None]:
    """A signed-in user the store does not know: 409 naming the call that creates the profile."""
    try:
        yield
    except UnknownUserError as err:
        from .users import profile_required

        raise profile_required(uid) from err


def request_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def retry_after(kind: str, now: datetime) -> int:
    now = now.astimezone(UTC)
    if kind == "monthly_budget":
        first = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return max(1, int((first - now).total_seconds()))
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds()))


def _problem_result(p: ProblemError) -> Result:
    return Result(p.problem.status, p.problem.model_dump(exclude_none=True), p.headers())


def photo_too_large(size: int, limit: int) -> ProblemError:
    err = PhotoError(
        f"The photo is larger than {limit / 1e6:.0f} MB" + (f" ({size / 1e6:.1f} MB)." if size else "."),
        "Export a smaller JPEG or PNG (for example 2000 px on the long side).",
    )
    return ProblemError(413, "photo-too-large", "Photo too large", err.message, err.hint)

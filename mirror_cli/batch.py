"""The Batch API path of a run: submit the jobs as JSONL batches, then poll and collect the results
by ``custom_id`` into the normal pipeline (spool, post-process, gate, store, ledger at the batch
price). Everything needed to collect lives in the run's record, so any process can poll it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .jobs import JobSpec, Outcome, Pipeline, RunReport, claim_key
from .jobs.types import reservation_from, reservation_info
from .models import ImageResult
from .pricing import cost_from_usage
from .providers.openai import usage_of
from .providers.openai_batch import TERMINAL, OpenAIBatchProvider
from .stores.base import JobState, RunInfo

if TYPE_CHECKING:
    from .models import Persona
    from .planner import Job
    from .stores.base import Reservation


class BatchRunner:
    def __init__(self, pipeline: Pipeline, provider: OpenAIBatchProvider, persona_of: Callable[[str], Persona]):
        if not isinstance(provider, OpenAIBatchProvider):
            raise UsageError("The Batch API needs the openai-batch provider.", "Use --via batch-api.")
        self.p = pipeline
        self.provider = provider
        self.persona_of = persona_of

    async def _state(
        self,
        run: RunInfo,
        job_id: str,
        uid: str,
        target: str,
        state: Any,
        key: str = "",
        detail: str | None = None,
        avatar_id: str | None = None,
    ) -> None:
        await self.p.io(
            self.p.store.put_job_state,
            JobState(run.id, job_id, uid, target, state, key, avatar_id, detail, self.p.now()),
        )

    async def submit(self, specs: list[JobSpec], run: RunInfo) -> RunReport:
        """Prepare every job (spool, cache, screens, budget) and submit the rest as batches. A
        user's later jobs wait for the earlier ones (they reference their images) and go out with
        the next `runs poll --resubmit`."""
        report = RunReport(run_id=run.id)
        self.p.run = run
        self.provider.uploaded = run.params.setdefault("uploads", {})  # persisted with the run
        jobs_meta: dict[str, Any] = run.params.setdefault("jobs", {})
        waiting: list[str] = run.params.setdefault("waiting", [])
        attempt = int(run.params.get("submissions", 0)) + 1
        by_user: dict[str, list[JobSpec]] = {}
        for spec in specs:
            by_user.setdefault(spec.persona.id, []).append(spec)
        lines: dict[str, list[dict[str, Any]]] = {}
        for user_specs in by_user.values():
            first, rest = user_specs[0], user_specs[1:]
            for later in rest:
                if later.job_id not in waiting:
                    waiting.append(later.job_id)
                    await self._state(
                        run,
                        later.job_id,
                        later.persona.id,
                        later.target,
                        "pending",
                        detail="waits for this user's earlier job in the batch",
                    )
            job = await self.p.io(self.p.planner.plan, first.persona, first.progress, first.target, photo=first.photo)
            prepared = await self.p.life.prepare(job)
            if isinstance(prepared, Outcome):
                report.outcomes.append(prepared)
                done = prepared.status in ("cached", "ingested", "generated")
                await self._state(
                    run,
                    job.job_id,
                    job.user_id,
                    job.target,
                    "done" if done else "degraded",
                    job.request_key,
                    prepared.reason,
                )
                continue
            if not await self._claim(run, job, prepared, report):
                continue
            custom_id = f"{job.job_id}#{attempt}"
            endpoint, line = await self.provider.line(custom_id, job.request, job.user_id)
            lines.setdefault(endpoint, []).append(line)
            jobs_meta[custom_id] = {
                "job_id": job.job_id,
                "user": job.user_id,
                "target": job.target,
                "key": job.request_key,
                "estimate": job.estimate_usd,
                "reservation": None if prepared is None else reservation_info(prepared),
            }
            await self._state(run, job.job_id, job.user_id, job.target, "in_flight", job.request_key, "in a batch")
            report.outcomes.append(
                Outcome(
                    job.user_id,
                    job.target,
                    "planned",
                    request_key=job.request_key,
                    estimate_usd=job.estimate_usd,
                    reason="submitted to the Batch API",
                )
            )
        batches = run.params.setdefault("batches", [])
        for endpoint, endpoint_lines in lines.items():
            for batch_id, custom_ids in await self.provider.submit(endpoint, endpoint_lines, {"run_id": run.id}):
                batches.append({"id": batch_id, "endpoint": endpoint, "collected": False, "custom_ids": custom_ids})
        run.params["submissions"] = attempt
        run.state = "submitted" if lines else run.state
        await self.p.io(self.p.store.update_run, run)
        return report

    async def _claim(self, run: RunInfo, job: Job, prepared: Reservation | None, report: RunReport) -> bool:
        """Claimed until collected: no other run, shard or process buys it meanwhile. Held
        elsewhere: the job fails for this run (its reservation released)."""
        claimed = await self.p.io(
            self.p.store.claim,
            self.p.life.claims.new_claim(job, self.p.configs.limits.claims.batch_lease_s, owner=self.owner(run)),
            self.p.wall(),
            None,
        )
        if claimed.acquired:
            return True
        if prepared is not None:
            await self.p.io(self.p.store.release, prepared)
        holder = claimed.current.owner if claimed.current else "?"
        reason = f"in flight elsewhere ({holder}); not bought twice"
        report.outcomes.append(Outcome(job.user_id, job.target, "failed", reason=reason, request_key=job.request_key))
        run.params.setdefault("failed", []).append(job.job_id)
        await self._state(run, job.job_id, job.user_id, job.target, "failed", job.request_key, reason)
        return False

    @staticmethod
    def owner(run: RunInfo) -> str:
        return f"batch:{run.id}"

    async def collect(
        self, run: RunInfo, *, wait: bool = False, poll_s: float = 30.0, resubmit: bool = False
    ) -> RunReport:
        report = RunReport(run_id=run.id)
        self.p.run = run
        self.provider.uploaded = run.params.setdefault("uploads", {})
        while True:
            open_batches = 0
            for batch in run.params.get("batches", []):
                if batch["collected"]:
                    continue
                status = await self.provider.status(batch["id"])
                if status["status"] not in TERMINAL:
                    open_batches += 1
                    continue
                results: dict[str, dict[str, Any]] = {}
                for file_id in (status["output_file_id"], status["error_file_id"]):
                    if file_id:
                        for line in await self.provider.lines_of(file_id):
                            results[line["custom_id"]] = line
                ids = [cid for cid in batch["custom_ids"] if cid in run.params["jobs"]]
                for cid in ids:
                    report.outcomes.append(await self._collect_one(run, cid, results.get(cid), status["status"]))
                batch["collected"] = True
                await self.p.io(self.p.store.update_run, run)
                # collected: the batch's input, output and error files are no longer needed
                for file_id in (status.get("input_file_id"), status["output_file_id"], status["error_file_id"]):
                    if file_id:
                        await self.provider.delete_file(file_id)
            if open_batches == 0 or not wait:
                break
            await asyncio.sleep(poll_s)
        if resubmit and not any(not b["collected"] for b in run.params.get("batches", [])):
            again = [*run.params.get("failed", []), *run.params.get("waiting", [])]
            run.params["failed"], run.params["waiting"] = [], []
            specs = []
            for job_id in dict.fromkeys(again):
                uid, _, target = job_id.partition(".")
                persona = await self.p.io(self.persona_of, uid)
                specs.append(JobSpec(persona, persona.progress, target))
            if specs:
                submitted = await self.submit(specs, run)
                report.outcomes.extend(submitted.outcomes)
        pending = any(not b["collected"] for b in run.params.get("batches", []))
        if not pending and not run.params.get("waiting") and not run.params.get("failed"):
            # nothing left to submit: the uploaded references (a user's photo among them) go now
            uploads = run.params.get("uploads", {})
            for digest in list(uploads):
                await self.provider.delete_file(str(uploads[digest]["id"]))
                del uploads[digest]
        if pending:
            run.state = "submitted"
        elif run.params.get("waiting"):
            # users' later stages still wait for `runs poll --resubmit`: not finished yet
            run.state = "awaiting_resubmit"
        else:
            run.state = "finished" if not run.params.get("failed") else "finished_with_failures"
        await self.p.io(self.p.store.update_run, run)
        return report

    async def _collect_one(self, run: RunInfo, cid: str, line: dict[str, Any] | None, batch_status: str) -> Outcome:
        meta = run.params["jobs"][cid]
        outcome = await self._collect_line(run, cid, line, batch_status)
        # stored (or failed for good): the job's claim goes, after its result is in the cache
        await self.p.io(self.p.store.release_claim, claim_key(meta["user"], meta["key"]), self.owner(run))
        return outcome

    async def _collect_line(self, run: RunInfo, cid: str, line: dict[str, Any] | None, batch_status: str) -> Outcome:
        meta = run.params["jobs"].pop(cid)
        persona = await self.p.io(self.persona_of, meta["user"])
        job = await self.p.io(self.p.planner.plan, persona, persona.progress, meta["target"])
        job.request_key = meta["key"]  # the key it was submitted (and will be paid) under
        reservation = reservation_from(meta["reservation"]) if meta["reservation"] else None
        response = (line or {}).get("response") or {}
        body = response.get("body") or {}
        if response.get("status_code") == 200 and body.get("data"):
            import openai

            parsed = openai.types.ImagesResponse.model_validate(body)
            usage = usage_of(parsed)
            result = ImageResult(
                data=base64.b64decode(body["data"][0]["b64_json"]),
                mime="image/png",
                usage=usage,
                cost_usd=cost_from_usage(job.model_entry, usage, batch=True),
                request_id=response.get("request_id"),
                provider=self.provider.name,
                model=job.request.model,
            )
            self.p.life.buyer.spool_result(job, result)
            if reservation:
                await self.p.io(self.p.store.settle, reservation, result.cost_usd)
            outcome = await self.p.life.finish(job, result, ingested=False, may_retry=False)
            await self._state(
                run,
                meta["job_id"],
                job.user_id,
                job.target,
                "done",
                job.request_key,
                avatar_id=outcome.record.id if outcome.record else None,
            )
            return outcome
        error = (
            (line or {}).get("error")
            or body.get("error")
            or {"message": f"no result for this request (batch {batch_status})"}
        )
        message = f"{error.get('code') or ''} {error.get('message') or ''}".strip()
        if reservation:
            await self.p.io(self.p.store.release, reservation)
        # (this run is the pipeline's: the line carries its id)
        await self.p.ctx.book(
            job, "failed", provider=self.provider.name, model=job.model_name, detail=f"batch: {message}"
        )
        run.params.setdefault("failed", []).append(meta["job_id"])
        await self._state(run, meta["job_id"], job.user_id, job.target, "failed", job.request_key, message)
        return Outcome(
            job.user_id,
            job.target,
            "failed",
            reason=message,
            request_key=job.request_key,
            estimate_usd=meta["estimate"],
        )

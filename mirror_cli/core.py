"""The one core every edge calls (CLI, server, queue workers): a thin facade over the use cases.

``Wiring`` opens the back-ends; each use case lives in its own module under ``usecases/`` and
is bound here as a method under its public name. Each paid operation has one async
implementation (``agenerate``, ``aevolve``, ``atrilogy``, ``apoll``); its synchronous twin is
the same function run by the core's one runner (``blocking``), so no signature is written twice.
The core decides nothing about presentation, and no edge talks to a provider or a store except
through it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from .erasure import erase_user
from .usecases import doctor as checks
from .usecases import due, fallback_sets, generation, reports
from .usecases import runs as run_cases
from .usecases import users as user_cases
from .usecases.shards import Shard
from .wiring import Wiring

P = ParamSpec("P")
T = TypeVar("T")
W = TypeVar("W", bound=Wiring)


def blocking(fn: Callable[Concatenate[W, P], Coroutine[Any, Any, T]]) -> Callable[Concatenate[W, P], T]:
    """The synchronous twin of an async use case: the same call, run to completion in one event
    loop per call (the provider's HTTP client lives and closes inside it)."""

    def call(self: W, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run_async(fn(self, *args, **kwargs))

    call.__name__ = call.__qualname__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


class Mirror(Wiring):
    # users
    user_ids = user_cases.user_ids
    persona = user_cases.persona
    set_progress = user_cases.set_progress
    import_users = user_cases.import_users
    import_examples = user_cases.import_examples
    set_timezone = user_cases.set_timezone
    record_consent = user_cases.record_consent
    erase_user = erase_user

    # paid operations: async, and their synchronous twins
    agenerate = generation.generate
    generate = blocking(generation.generate)
    aevolve = generation.evolve
    evolve = blocking(generation.evolve)
    atrilogy = generation.trilogy
    trilogy = blocking(generation.trilogy)
    apoll = run_cases.poll
    poll = blocking(run_cases.poll)
    asweep_spool = run_cases.sweep_spool
    cached_avatar = generation.cached_avatar

    # which jobs are due
    latest_stage = due.latest_stage
    evolve_specs = due.evolve_specs
    due_queries = due.due_queries
    due_specs = due.due_specs
    nightly_tick = due.nightly_tick
    plan_tick = due.plan_tick
    overdue_users = due.overdue_users
    reindex_due = due.reindex_due

    # runs and reports
    runs = run_cases.runs
    run_detail = run_cases.run_detail
    timeline = reports.timeline
    usage = reports.usage
    purge_cache = reports.purge_cache
    gallery = reports.gallery

    # reports on avatars (mirror_cli/reporting.py)
    report_avatar = reports.report_avatar
    list_reports = reports.list_reports
    show_report = reports.show_report
    resolve_report = reports.resolve_report

    # fallback sets and health
    seed_fallbacks = fallback_sets.seed_fallbacks
    doctor = checks.doctor

    # queued jobs (worker.py works on the whole facade: it plans ticks and runs generations)
    def work(
        self, *, until_empty: bool = False, batch: int = 4, idle_s: float = 1.0, handlers: dict[str, Any] | None = None
    ) -> Any:
        """Run queued jobs (``mirror worker``) until stopped, or until the queue is empty;
        ``handlers``: more kinds of message (the app's 202 jobs: server/queued.py)."""
        from .worker import Worker

        worker = Worker(self, self.queue, batch=batch, handlers=handlers)
        return self.run_async(worker.run(idle_s=idle_s, until_empty=until_empty))

    def enqueue_due(self, shard: Shard | None = None, *, any_hour: bool = False) -> int:
        """Publish this tick's due jobs to the queue instead of running them; how many."""
        from .worker import enqueue_due

        return self.run_async(enqueue_due(self, self.queue, shard, any_hour))


__all__ = ["Mirror", "Shard", "blocking"]

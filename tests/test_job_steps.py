"""The steps of a job's life, each on its own, on the local store (SQLite): money (reserve,
settle, crash booking), claims (take-over, waiting), and the package's one rule — a step imports
no other step, the orchestrator (life) calls them."""

from __future__ import annotations

import ast
import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import make_config_dir

import mirror_cli.jobs as jobs_pkg
from mirror_cli.jobs.claims import Acquired, claim_key
from mirror_cli.jobs.money import Refused
from mirror_cli.jobs.types import Outcome, reservation_info
from mirror_cli.stores.base import Caps, Claim, Reservation

STEPS = {"claims", "money", "buy", "finish", "moderation", "cache", "degrade", "states"}
ABOVE = {"life", "recovery", "scheduler"}


@pytest.fixture
def paid(make_core, openai_env, tmp_path):
    """A core on the loopback OpenAI server (a priced model), its pipeline and one planned job."""
    cfg = make_config_dir(tmp_path, {"claims": {"lease_s": 30, "poll_s": 0.05, "wait_s": 0.2}})
    core = make_core(provider="openai", base_url=openai_env.url, config_dir=cfg)
    persona = core.persona("demo")
    job = core.planner().plan(persona, persona.progress, "month")
    assert job.estimate_usd > 0
    return core, job


def test_money_holds_the_run_budget_and_every_cap(paid):
    core, job = paid
    refused = asyncio.run(core.pipeline(max_cost=0).money.reserve(job))
    assert isinstance(refused, Refused) and refused.limit == "run_budget"

    pipeline = core.pipeline()
    money = pipeline.money
    money.caps = Caps(None, None, job.estimate_usd * 1.5)  # room for one estimate this month

    async def go() -> tuple[object, ...]:
        first = await money.reserve(job)
        assert isinstance(first, Reservation)
        second = await money.reserve(job)  # the month's room is held by the first
        await money.settle(first, 0.0, 0.0)  # nothing billed: released
        third = await money.reserve(job)
        assert isinstance(third, Reservation)
        await money.settle(third, 0.0, job.estimate_usd)  # may have been billed: kept, never released
        fourth = await money.reserve(job)
        return second, fourth

    second, fourth = asyncio.run(go())
    assert isinstance(second, Refused) and second.limit == "monthly_budget"
    assert isinstance(fourth, Refused) and fourth.limit == "monthly_budget"


def test_a_dead_owners_request_is_booked_once_per_request_sent(paid):
    """Recovery and a take-over both see the dead claim: its one request sent is booked once, under
    the request's id; an owner that died before sending anything booked nothing, and its
    reservation is released, not settled."""
    core, job = paid
    money = core.pipeline().money
    now = core.now()
    key = claim_key(job.user_id, job.request_key)
    sent = {"id": "req1", "estimate_usd": 0.04}
    dead = Claim(key, "gone:1:x", now, now, {"estimate_usd": 0.04, "run_id": "r1", "sent": sent})

    async def book(claim: Claim, take_over: bool) -> float:
        return await money.book_crashed(claim, job.user_id, job.target, job.request_key, take_over=take_over)

    async def go() -> list[float]:
        return [await book(dead, False), await book(dead, True)]

    assert asyncio.run(go()) == [0.04, 0.0]
    maybe = [e for e in core.store.events() if e.kind == "may_have_billed"]
    assert [(e.request_key, e.cost_usd, e.run_id) for e in maybe] == [(job.request_key, 0.04, "r1")]

    # the next owner took the claim over and died before its request left: nothing to book
    money.caps = Caps(None, None, job.estimate_usd * 1.5)

    async def unsent() -> tuple[float, object]:
        r = await money.reserve(job)
        assert isinstance(r, Reservation)
        info = {"estimate_usd": 0.04, "run_id": "r2", "reservation": reservation_info(r)}
        booked = await book(Claim(key, "gone:2:y", now, now, info), True)
        return booked, await money.reserve(job)  # the released estimate is free again

    booked, again = asyncio.run(unsent())
    assert booked == 0.0 and isinstance(again, Reservation)
    assert len([e for e in core.store.events() if e.kind == "may_have_billed"]) == 1


def test_claims_take_over_an_expired_lease_and_wait_for_a_live_one(paid):
    core, job = paid
    claims = core.pipeline().life.claims
    key = claim_key(job.user_id, job.request_key)
    wall = claims.ctx.wall()

    async def nothing_yet() -> Outcome | None:
        return None

    expired = Claim(key, "elsewhere:1:a", wall - timedelta(seconds=1), core.now(), {"estimate_usd": 0.04})
    assert core.store.claim(expired, wall - timedelta(seconds=5), None).acquired
    got = asyncio.run(claims.acquire(job, nothing_yet))
    assert isinstance(got, Acquired) and got.taken_over is not None and got.taken_over.owner == "elsewhere:1:a"

    core.store.release_claim(key)
    live = Claim(key, "elsewhere:1:b", wall + timedelta(seconds=60), core.now(), {})
    assert core.store.claim(live, wall, None).acquired
    waited = asyncio.run(claims.acquire(job, nothing_yet))
    assert isinstance(waited, Outcome) and waited.status == "failed" and "elsewhere:1:b" in (waited.reason or "")


def _imports(path: Path) -> set[str]:
    """The modules of mirror_cli.jobs that ``path`` imports (relative imports inside the package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_no_step_imports_another_step_or_the_orchestrator():
    folder = Path(jobs_pkg.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    assert STEPS | ABOVE | {"types", "context"} == modules
    for name in sorted(STEPS | {"types", "context"}):
        wrong = _imports(folder / f"{name}.py") & (STEPS | ABOVE)
        assert not wrong, f"jobs/{name}.py imports {sorted(wrong)}: steps only use types and context"
    # the orchestrator calls every step
    assert _imports(folder / "life.py") >= STEPS

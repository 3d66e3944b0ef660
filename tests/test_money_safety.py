"""Money safety measured on the loopback server's own ledger: overlapping runs never pay twice,
SIGKILLs never re-buy a received image, spend is never under-counted, a timeout storm bills each
image at most twice.

The figures each test measured are printed (run with -s to see them)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import make_config_dir, spooled_request_ids

from mirror_cli.models import Persona

PRICES = {"text_in": 5.0, "image_in": 8.0, "image_out": 30.0}  # gpt-image-2, USD per 1M tokens


def _configs(tmp_path: Path, **retry: Any) -> Path:
    cfg = make_config_dir(tmp_path, {"system_daily": 10_000, "per_user_daily": 100, "monthly_budget_usd": 1000})
    limits = yaml.safe_load((cfg / "limits.yaml").read_text())
    limits["retry"].update({"max_attempts": 6, **retry})
    limits["claims"] = {"lease_s": 30, "poll_s": 0.2, "wait_s": 300}
    (cfg / "limits.yaml").write_text(yaml.safe_dump(limits))
    return cfg


def _mirror(data_dir: Path, cfg: Path, url: str, *args: str, store: str = "local") -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "mirror"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-abcdefghijklmnop",
        "MIRROR_DATA_DIR": str(data_dir),
        "MIRROR_CONFIG_DIR": str(cfg),
        "MIRROR_PROVIDER": "openai",
        "MIRROR_BASE_URL": url,
        "MIRROR_STORE": store,
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _cost(entry: dict[str, Any]) -> float:
    u = entry["usage"]
    return (
        u["input_tokens_details"]["text_tokens"] * PRICES["text_in"]
        + u["input_tokens_details"]["image_tokens"] * PRICES["image_in"]
        + u["output_tokens"] * PRICES["image_out"]
    ) / 1e6


def _by_request(ledger: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    keys: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in ledger:
        keys.setdefault((e["safety_identifier"], e["prompt"]), []).append(e)
    return keys


def _paid_exactly_once(events: list[Any], ledger: list[dict[str, Any]]) -> list[Any]:
    """The ledger's paid events: each one an answer the server billed, booked once, at its cost."""
    paid = [e for e in events if e.kind in ("generated", "spool_ingest")]
    ids = [e.request_id for e in paid]
    assert len(ids) == len(set(ids)), "an answer was booked twice"
    served = {e["request_id"]: e for e in ledger}
    for e in paid:
        assert e.request_id in served, f"{e.request_id} was booked but never billed"
        assert e.cost_usd == pytest.approx(_cost(served[e.request_id]), rel=1e-6)
    return paid


def _one_estimate(maybe_events: list[Any], ledger: list[dict[str, Any]]) -> float:
    """Every job here is the same (a first stage): one estimate, never below what an image cost."""
    estimates = {round(e.cost_usd, 9) for e in maybe_events}
    assert len(estimates) <= 1, estimates
    estimate = estimates.pop() if estimates else 0.0
    assert not maybe_events or estimate >= max(_cost(e) for e in ledger) - 1e-9
    return estimate


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_two_overlapping_evolve_due_runs_pay_nothing_twice(tmp_path, make_core, openai_env, request, store):
    """Cron overlap: two `evolve --due` processes on one store at the same moment."""
    users = 24
    cfg = _configs(tmp_path)
    data_a, data_b = tmp_path / "a", tmp_path / "b"  # two machines: one store, a spool each
    if store == "firebase":
        request.getfixturevalue("firebase_env")
    else:
        data_b = data_a
    core = make_core(examples=False, config_dir=cfg, data_dir=data_a, store=store)
    core.import_users([Persona(id=f"o{i:02d}", name="O") for i in range(users)])
    openai_env.latency = 0.15
    procs = [
        _mirror(d, cfg, openai_env.url, "evolve", "--due", "--any-hour", "--json", "--concurrency", "4", store=store)
        for d in (data_a, data_b)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    summaries = [json.loads(out)["summary"] for out, _ in outs]
    paid_twice = sum(len(c) - 1 for c in _by_request(openai_env.ledger).values())
    print(
        f"\n[overlap/{store}] users={users} billed={len(openai_env.ledger)} paid_twice={paid_twice} "
        f"generated={[s['generated'] for s in summaries]} cached={[s['cached'] for s in summaries]}"
    )
    assert paid_twice == 0
    assert len(openai_env.ledger) == users
    # each image was bought by one process; the other took its result
    assert sum(s["generated"] for s in summaries) == users
    assert all(s["generated"] + s["cached"] + s["ingested"] == users for s in summaries)


@pytest.mark.slow
def test_sigkill_twenty_times_with_gate_retries_never_rebuys_and_counts_all_spend(make_core, openai_env, tmp_path):
    """`evolve --due` killed with SIGKILL at random moments 20 times, a fifth of the answers
    blank (a hard gate failure: the reinforced retry path), then resumed until done.

    Each process talks to the server under its own tag, so the server's ledger says which process
    every billed image was sent by. An image counts as *received* when the tool kept it: its
    request id is in the store's ledger, or in the spool as the killed process left it (read right
    after each kill, before the resume). An image billed for a killed process that never kept it
    was in flight at that kill (the API has no idempotency key: buying it again is unavoidable);
    any other image bought again is a re-buy."""
    users, kills_wanted = 100, 20
    cfg = _configs(tmp_path)
    data = tmp_path / "data"
    core = make_core(examples=False, config_dir=cfg, data_dir=data)
    core.import_users([Persona(id=f"k{i:02d}", name="K") for i in range(users)])
    core.close()
    openai_env.latency = 0.25
    openai_env.bad_random = (random.Random(5), 0.2, "blank")
    rng = random.Random(12)
    kill_times: list[float] = []
    killed: set[str] = set()  # the tags of the processes killed
    kept_at_kills: set[str] = set()  # request ids found in the spool right after a kill
    run_id = None
    for attempt in range(kills_wanted + 10):
        args = ["evolve", "--due", "--any-hour", "--json", "--concurrency", "2"] + (
            ["--resume", run_id] if run_id else []
        )
        proc = _mirror(data, cfg, openai_env.client_url(f"p{attempt}"), *args)
        if len(kill_times) < kills_wanted:
            start = len(openai_env.requests)
            deadline = time.monotonic() + 60
            # wait for this process's first request, then a random moment while it works
            while len(openai_env.requests) == start and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1 + rng.random() * 1.2)
            if proc.poll() is None:
                kill_times.append(time.monotonic())
                proc.kill()
                proc.wait()
                killed.add(f"p{attempt}")
                kept_at_kills |= spooled_request_ids(data / "spool")
                if run_id is None:
                    check = make_core(examples=False, config_dir=cfg, data_dir=data)
                    run_id = check.runs()[0].id
                    check.close()
                continue
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 6), err[-2000:]
        break
    kills = len(kill_times)
    assert kills == kills_wanted

    check = make_core(examples=False, config_dir=cfg, data_dir=data)
    assert check.spool.pending() == []
    for uid in check.user_ids():
        assert [r.target for r in check.store.list_avatars(uid)] == ["newReflection"], uid
    run = check.store.get_run(run_id)
    assert run.state in ("finished", "finished_with_failures")
    assert not [s for s in check.store.job_states(run_id) if s.state in ("pending", "in_flight")]

    events = check.store.events()
    received = kept_at_kills | {e.request_id for e in events if e.request_id}

    def in_flight_at_a_kill(e: dict[str, Any]) -> bool:
        """Sent by a process that was killed, and never kept by it."""
        assert e["client"] is not None, e
        return e["client"] in killed and e["request_id"] not in received

    ledger = openai_env.ledger
    in_flight = [e for e in ledger if in_flight_at_a_kill(e)]
    copies = _by_request(ledger)
    paid_twice = sum(len(c) - 1 for c in copies.values())
    # a copy bought again although the earlier one had been received (not in flight at a kill)
    rebought = sum(1 for c in copies.values() for e in c[:-1] if not in_flight_at_a_kill(e))
    paid = _paid_exactly_once(events, ledger)
    confirmed = {e.request_id: e.cost_usd for e in paid}
    maybe_events = [e for e in events if e.kind == "may_have_billed"]
    maybe = sum(e.cost_usd for e in maybe_events)
    billed = sum(_cost(e) for e in ledger)
    tool = sum(confirmed.values()) + maybe
    # One may-have-billed per request sent whose answer the tool never kept; a kill between a
    # claim and its request adds at most one per job in flight (concurrency 2) per kill.
    unanswered = len(openai_env.requests) - len(paid)
    assert unanswered <= len(maybe_events) <= unanswered + 2 * kills, (unanswered, len(maybe_events), kills)
    estimate = _one_estimate(maybe_events, ledger)
    # where nothing was in flight at a kill, confirmed spend must match the server to the cent
    calm = [e for e in ledger if not in_flight_at_a_kill(e)]
    calm_billed = sum(_cost(e) for e in calm) or 1e-12
    calm_tool = sum(confirmed.get(e["request_id"], 0.0) for e in calm)
    print(
        f"\n[sigkill] kills={kills} billed_images={len(ledger)} stored={users} in_flight_at_kills={len(in_flight)} "
        f"paid_twice={paid_twice} rebought_received={rebought} server_billed=${billed:.4f} "
        f"tool_confirmed=${sum(confirmed.values()):.4f} may_have_billed=${maybe:.4f} "
        f"spend_ratio={tool / billed:.3f} calm_ratio={calm_tool / calm_billed:.4f}"
    )
    assert rebought == 0
    # every answer the tool received is booked as paid, once, at what the server billed
    assert {e["request_id"] for e in ledger if not in_flight_at_a_kill(e)} <= set(confirmed)
    assert paid_twice <= len(in_flight)
    assert billed - 1e-9 <= tool <= billed + estimate * (unanswered + 2 * kills) + 1e-9
    assert calm_tool == pytest.approx(calm_billed, rel=0.02)


def test_timeout_storm_bills_each_image_at_most_twice(make_core, openai_env, tmp_path):
    """A third of the answers arrive after the client gave up (billed anyway)."""
    users = 24
    cfg = _configs(tmp_path, request_timeout_s=1, max_unanswered_retries=1)
    core = make_core(examples=False, provider="openai", base_url=openai_env.url, config_dir=cfg, concurrency=6)
    core.import_users([Persona(id=f"t{i:02d}", name="T") for i in range(users)])
    openai_env.slow_random = (random.Random(3), 0.33, 1.6)
    report = core.generate(None, "newReflection")
    copies = _by_request(openai_env.ledger)
    worst = max(len(c) for c in copies.values())
    billed = sum(_cost(e) for e in openai_env.ledger)
    tool = report.cost_usd + report.may_have_billed_usd
    events = core.store.events()
    paid = _paid_exactly_once(events, openai_env.ledger)
    maybe_events = [e for e in events if e.kind == "may_have_billed"]
    unanswered = len(openai_env.requests) - len(paid)  # every request sent minus the answers kept
    estimate = _one_estimate(maybe_events, openai_env.ledger)
    print(
        f"\n[timeouts] users={users} billed_images={len(openai_env.ledger)} generated={report.count('generated')} "
        f"failed={report.failed} worst_copies={worst} unanswered={report.retries.unanswered} "
        f"spend_ratio={tool / billed:.3f}"
    )
    assert worst <= 2
    assert unanswered > 0 and len(maybe_events) == unanswered == report.retries.unanswered
    assert report.may_have_billed_usd == pytest.approx(sum(e.cost_usd for e in maybe_events))
    assert report.cost_usd == pytest.approx(sum(e.cost_usd for e in paid))
    assert billed - 1e-9 <= tool <= billed + estimate * unanswered + 1e-9
    usage = core.usage()
    assert usage.cost_usd + usage.may_have_billed_usd == pytest.approx(tool, rel=1e-6)


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_claims_are_exclusive_renewable_and_expire(make_core, request, store):
    from datetime import UTC, datetime, timedelta

    from mirror_cli.stores.base import Claim

    if store == "firebase":
        request.getfixturevalue("firebase_env")
    s = make_core(store=store).store
    now = datetime.now(UTC)

    def claim(owner: str, lease_s: float) -> Claim:
        return Claim("u1/key", owner, now + timedelta(seconds=lease_s), now, {"estimate_usd": 0.05})

    first = s.claim(claim("a", 60), now)
    assert first.acquired and first.previous is None
    second = s.claim(claim("b", 60), now)
    assert not second.acquired and second.current.owner == "a"
    assert s.renew_claim("u1/key", "a", now + timedelta(seconds=1), {"reservation": {"id": "r"}})
    assert not s.renew_claim("u1/key", "b", now + timedelta(seconds=90))
    later = now + timedelta(seconds=5)  # a's lease is over
    taken = s.claim(claim("b", 60), later)
    assert taken.acquired and taken.previous.owner == "a" and taken.previous.info["reservation"] == {"id": "r"}
    assert s.claim(claim("c", 60), later, steal_from="a").acquired is False  # only the named owner
    s.release_claim("u1/key", "a")  # not a's any more: nothing happens
    assert s.get_claim("u1/key").owner == "b"
    s.release_claim("u1/key", "b")
    assert s.get_claim("u1/key") is None


def _claims_core(make_core, openai_env, tmp_path, limits: dict[str, Any] | None = None, **claims: float):
    cfg = _configs(tmp_path)
    data = yaml.safe_load((cfg / "limits.yaml").read_text())
    data["claims"].update(claims)
    data.update(limits or {})
    (cfg / "limits.yaml").write_text(yaml.safe_dump(data))
    return make_core(provider="openai", base_url=openai_env.url, config_dir=cfg)


def _claim_key(core, uid: str, target: str) -> str:
    """The claim key of the job a run would make (its request key, from a dry run)."""
    (planned,) = core.generate([uid], target, dry_run=True).outcomes
    assert planned.request_key
    return f"{uid}/{planned.request_key}"


def _other_host(core, key: str, lease_s: float) -> None:
    """A claim of a process on another host (its liveness cannot be checked from here)."""
    from datetime import UTC, datetime, timedelta

    from mirror_cli.stores.base import Claim

    now = datetime.now(UTC)
    # the other process recorded its request as sent before it left (what recovery books)
    info = {"estimate_usd": 0.0553, "run_id": "elsewhere", "sent": {"id": "req-elsewhere", "estimate_usd": 0.0553}}
    assert core.store.claim(Claim(key, "otherhost:4242:n0", now + timedelta(seconds=lease_s), now, info), now).acquired


def test_live_claim_on_another_host_is_waited_for_then_given_up(make_core, openai_env, tmp_path):
    """Held by another host within its lease: wait up to claims.wait_s for its image, then give
    the job up (named), never buying it."""
    core = _claims_core(make_core, openai_env, tmp_path, wait_s=0.6, poll_s=0.05)
    _other_host(core, _claim_key(core, "demo", "month"), lease_s=3600)
    started = time.monotonic()
    report = core.generate(["demo"], "month")
    assert time.monotonic() - started >= 0.6
    (outcome,) = report.outcomes
    assert outcome.status == "failed" and "otherhost:4242:n0" in outcome.reason, outcome.reason
    assert openai_env.requests == [] and report.cost_usd == 0 and report.may_have_billed_usd == 0
    assert not [e for e in core.store.events() if e.kind == "may_have_billed"]


def test_expired_claim_on_another_host_is_taken_over_and_booked_once(make_core, openai_env, tmp_path):
    """Its lease ran out (the host died mid-request): the job is taken over, the other owner's
    request booked once at its estimate as may-have-billed, the image bought once."""
    core = _claims_core(make_core, openai_env, tmp_path, wait_s=30, poll_s=0.05)
    key = _claim_key(core, "demo", "month")
    _other_host(core, key, lease_s=-1)
    report = core.generate(["demo"], "month")
    assert report.count("generated") == 1 and len(openai_env.requests) == 1
    again = core.generate(["demo"], "month")
    assert again.count("cached") == 1 and len(openai_env.requests) == 1
    maybe = [e for e in core.store.events() if e.kind == "may_have_billed"]
    assert [(e.cost_usd, e.run_id) for e in maybe] == [(0.0553, "elsewhere")]
    assert core.store.get_claim(key) is None  # released once stored


def test_heartbeat_renews_the_lease_while_the_request_is_in_flight(make_core, openai_env, tmp_path):
    """A request in flight longer than the lease (its answer held): the heartbeat renews the
    claim every lease_s/3, so no other process takes it over."""
    import threading

    core = _claims_core(make_core, openai_env, tmp_path, lease_s=1.5, poll_s=0.05)
    key = _claim_key(core, "demo", "month")
    openai_env.hold()
    done: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: done.update(report=core.generate(["demo"], "month")))
    worker.start()
    try:
        openai_env.wait_for_requests(1)
        first = core.store.get_claim(key)
        assert first is not None
        leases = [first.lease_until]
        deadline = time.monotonic() + 30
        while len(set(leases)) < 3 and time.monotonic() < deadline:  # two renewals seen
            time.sleep(0.05)
            current = core.store.get_claim(key)
            assert current is not None and current.owner == first.owner
            leases.append(current.lease_until)
        assert len(set(leases)) >= 3 and leases == sorted(leases), leases
    finally:
        openai_env.release()
        worker.join(timeout=60)
    assert done["report"].count("generated") == 1 and len(openai_env.ledger) == 1
    assert openai_env.gate_timeouts == 0 and core.store.get_claim(key) is None


@pytest.mark.parametrize("store", ["local", "firebase"])
def test_failed_job_releases_its_reservation(make_core, openai_env, tmp_path, request, store):
    """A request refused before anything was billed (a 400): the job fails and its reservation
    is released, so the user's one generation a day is still there for the next run."""
    from openai_server import Fault

    if store == "firebase":
        request.getfixturevalue("firebase_env")
    core = _claims_core(make_core, openai_env, tmp_path, {"per_user_daily": 1}, poll_s=0.05)
    if store == "firebase":
        core = make_core(provider="openai", base_url=openai_env.url, config_dir=core.settings.config_dir, store=store)
    openai_env.push(Fault(400, "invalid_request_error", "invalid_value", "Invalid value for 'size'."))
    failed = core.generate(["demo"], "month")
    assert failed.count("failed") == 1 and openai_env.ledger == []
    retried = core.generate(["demo"], "month")
    assert retried.count("generated") == 1, retried.summary()
    assert len(openai_env.ledger) == 1

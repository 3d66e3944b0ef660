"""The Batch API path end to end against the loopback server: submit, poll, collect at half
price, edits referencing uploaded files, a partly failed batch and its resubmission."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import openai_flags
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.models import Progress

GPT_IMAGE_2 = {"text_in": 5.0, "image_in": 8.0, "image_out": 30.0}


@pytest.fixture
def batch_core(make_core, openai_env, fast_configs):
    def factory(**kw):
        return make_core(provider="openai-batch", base_url=openai_env.url, config_dir=fast_configs, **kw)

    return factory


def test_submit_poll_collect_at_half_price(batch_core, openai_env):
    core = batch_core()
    submitted = core.generate(None, "newReflection")
    run_id = submitted.run_id
    assert submitted.count("planned") == 6 and openai_env.ledger == []  # nothing made yet
    run = core.store.get_run(run_id)
    assert run.state == "submitted" and len(run.params["batches"]) == 1
    assert {s.state for s in core.store.job_states(run_id)} == {"in_flight"}
    (batch,) = openai_env.batches.values()
    assert batch["endpoint"] == "/v1/images/generations" and batch["metadata"] == {"run_id": run_id}

    first = core.poll(run_id)  # still in progress
    assert first.outcomes == [] and core.store.get_run(run_id).state == "submitted"
    report = core.poll(run_id, wait=True, poll_s=0.01)
    assert report.count("generated") == 6 and len(openai_env.ledger) == 6
    assert report.cost_usd == pytest.approx(openai_env.billed_usd(GPT_IMAGE_2) / 2, abs=1e-6)
    assert core.store.get_run(run_id).state == "finished"
    assert {s.state for s in core.store.job_states(run_id)} == {"done"}
    assert all(len(core.store.list_avatars(u)) == 1 for u in core.user_ids())
    again = core.generate(None, "newReflection")  # a repeat is a cache hit, nothing submitted
    assert again.count("cached") == 6 and len(openai_env.batches) == 1


def test_edits_reference_uploaded_files(make_core, batch_core, openai_env, fast_configs):
    sync = make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs)
    sync.generate(["maya", "kenji"], "newReflection")
    core = batch_core()
    core.set_progress("maya", Progress(active_days=30))
    core.set_progress("kenji", Progress(active_days=8))
    run_id = core.evolve(None, due=True, any_hour=True).run_id
    # users with an anchor go out as edits; the others get their anchor generated first
    (batch,) = [b for b in openai_env.batches.values() if b["endpoint"] == "/v1/images/edits"]
    lines = [json.loads(x) for x in openai_env.files[batch["input_file_id"]]["data"].decode().splitlines()]
    anchors = {
        r.user_id: hashlib.sha256(core.store.read_image(r.image_path)).hexdigest()
        for u in ("maya", "kenji")
        for r in core.store.list_avatars(u)
    }
    for line in lines:
        (image,) = line["body"]["images"]
        f = openai_env.files[image["file_id"]]
        assert f["purpose"] == "vision" and f["content_type"] == "image/webp"
        assert hashlib.sha256(f["data"]).hexdigest() in anchors.values()
        assert "input_fidelity" not in line["body"]
    report = core.poll(run_id, wait=True, poll_s=0.01)
    edits = sorted(
        (o.user_id, o.target) for o in report.outcomes if o.status == "generated" and o.user_id in ("maya", "kenji")
    )
    assert edits == [("kenji", "firstWeek"), ("maya", "month")]


def test_partly_failed_batch_is_recorded_and_resubmitted(batch_core, openai_env, data_dir, fast_configs):
    openai_env.batch_fail = {"amira.newReflection#1", "leo.newReflection#1"}
    core = batch_core()
    run_id = core.generate(None, "newReflection").run_id
    report = core.poll(run_id, wait=True, poll_s=0.01)
    assert report.count("generated") == 4 and report.failed == 2
    failed = {o.user_id: o.reason for o in report.outcomes if o.status == "failed"}
    assert set(failed) == {"amira", "leo"} and all("image_generation_failed" in r for r in failed.values())
    assert core.store.get_run(run_id).state == "finished_with_failures"
    assert sum(e.kind == "failed" for e in core.store.events()) == 2

    openai_env.batch_fail = set()
    r = CliRunner().invoke(
        app,
        [
            "runs",
            "poll",
            run_id,
            "--resubmit",
            "--json",
            *openai_flags(openai_env.url, fast_configs, data_dir),
        ],
        env={"OPENAI_API_KEY": "sk-test-abcdefghijklmnop"},
    )
    assert r.exit_code == 0, r.output
    assert len(openai_env.batches) == 2  # the failures went out again
    done = core.poll(run_id, wait=True, poll_s=0.01)
    assert done.count("generated") == 2 and core.store.get_run(run_id).state == "finished"
    keys = [(e["safety_identifier"], e["prompt"]) for e in openai_env.ledger]
    assert len(keys) == len(set(keys)) == 6  # nothing paid twice


def test_batch_jsonl_splits_over_the_request_limit(batch_core, openai_env, monkeypatch):
    import mirror_cli.providers.openai_batch as ob

    monkeypatch.setattr(ob, "MAX_REQUESTS", 4)
    core = batch_core()
    run_id = core.generate(None, "newReflection").run_id
    assert len(core.store.get_run(run_id).params["batches"]) == 2
    assert core.poll(run_id, wait=True, poll_s=0.01).count("generated") == 6


def test_batch_files_are_deleted_once_collected_and_resubmission_reuses_uploads(
    make_core, batch_core, openai_env, fast_configs
):
    make_core(provider="openai", base_url=openai_env.url, config_dir=fast_configs).generate(["maya"], "newReflection")
    core = batch_core()
    core.set_progress("maya", Progress(active_days=30))
    openai_env.batch_fail = {"maya.month#1"}
    run_id = core.evolve("maya").run_id or core.runs()[0].id
    uploads = {fid: f for fid, f in openai_env.files.items() if f["purpose"] == "vision"}
    assert uploads and all(f["expires_after_s"] == str(7 * 86400) for f in uploads.values())
    core.poll(run_id, wait=True, poll_s=0.01)
    assert set(uploads) <= set(openai_env.files)  # a failed job may go out again: its upload stays
    assert core.store.get_run(run_id).params["uploads"]  # persisted with the run
    openai_env.batch_fail = set()
    core.poll(run_id, resubmit=True)
    again = {fid for fid, f in openai_env.files.items() if f["purpose"] == "vision"}
    assert again == set(uploads)  # reused, not uploaded again
    assert core.poll(run_id, wait=True, poll_s=0.01).count("generated") == 1
    assert openai_env.files == {}  # references, inputs and outputs all deleted
    assert core.store.get_run(run_id).params["uploads"] == {}


@pytest.mark.parametrize("end", ["expired", "cancelled"])
def test_expired_or_cancelled_batch_keeps_what_was_made_and_resubmits_the_rest(batch_core, openai_env, end):
    """A batch that expired (or was cancelled) with four of six lines done: the four are stored at
    their price, the two failed naming why and booked as nothing (never billed), and --resubmit
    buys only those two."""
    openai_env.batch_end = (end, 4)
    core = batch_core()
    run_id = core.generate(None, "newReflection").run_id
    report = core.poll(run_id, wait=True, poll_s=0.01)
    assert report.count("generated") == 4 and report.failed == 2 and len(openai_env.ledger) == 4
    assert all(f"batch_{end}" in o.reason for o in report.outcomes if o.status == "failed")
    assert report.cost_usd == pytest.approx(openai_env.billed_usd(GPT_IMAGE_2) / 2, abs=1e-6)
    assert core.store.get_run(run_id).state == "finished_with_failures"
    assert not [e for e in core.store.events() if e.kind == "may_have_billed"]
    openai_env.batch_end = None
    core.poll(run_id, resubmit=True)
    done = core.poll(run_id, wait=True, poll_s=0.01)
    assert done.count("generated") == 2 and core.store.get_run(run_id).state == "finished"
    keys = [(e["safety_identifier"], e["prompt"]) for e in openai_env.ledger]
    assert len(keys) == len(set(keys)) == 6


def test_two_collectors_of_one_batch_store_and_book_each_image_once(batch_core, openai_env):
    """Two processes poll the same run at once (a cron and an operator): each image is stored and
    booked once, and the spend in the ledger is the batch's price once. (Each process's own
    report still counts the images it collected, so their sum can be twice the spend.)"""
    import threading

    openai_env.batch_polls_to_complete = 4  # both are polling before the batch completes
    core = batch_core()
    run_id = core.generate(None, "newReflection").run_id
    collectors = [core, batch_core()]
    start = threading.Barrier(2)
    reports: list = []

    def collect(c) -> None:
        start.wait()
        reports.append(c.poll(run_id, wait=True, poll_s=0.01))

    threads = [threading.Thread(target=collect, args=(c,)) for c in collectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(reports) == 2 and len(openai_env.ledger) == 6
    paid = [e for e in core.store.events() if e.kind == "generated"]
    assert len(paid) == 6 and len({e.request_id for e in paid}) == 6
    assert all(len(core.store.list_avatars(u)) == 1 for u in core.user_ids())
    half_price = openai_env.billed_usd(GPT_IMAGE_2) / 2
    assert core.usage().cost_usd == pytest.approx(half_price, abs=1e-6)
    assert core.store.get_run(run_id).state == "finished"

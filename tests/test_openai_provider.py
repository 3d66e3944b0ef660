"""The OpenAI provider through the real SDK against the loopback server (tests/openai_server.py)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, time, timedelta

import pytest
from conftest import CONFIGS, import_examples, make_config_dir, openai_flags
from openai_server import (
    Fault,
    auth_fault,
    billing_fault,
    moderation_fault,
    quota_fault,
    rate_limit_fault,
    verify_fault,
)
from typer.testing import CliRunner

from mirror_cli.cli.app import app
from mirror_cli.clock import PinnedClock
from mirror_cli.config import ConfigSet
from mirror_cli.errors import ConfigError, ExitCode, RunStoppedError
from mirror_cli.planner import safety_identifier

GPT_IMAGE_2 = {"text_in": 5.0, "image_in": 8.0, "image_out": 30.0}  # USD per 1M tokens, from the reference


@pytest.fixture
def oa(make_core, openai_env, fast_configs):
    def factory(**kw):
        kw.setdefault("config_dir", fast_configs)
        return make_core(provider="openai", base_url=openai_env.url, **kw)

    return factory


def _scaled_minute(tmp_path):
    """Configs whose rate-limit 'minute' lasts one second: a 429 lowers the learned rate (to one
    image per window when nothing was configured), and these tests must not wait real minutes."""
    return make_config_dir(tmp_path, {"rate_limits": {"gpt-image-2": {"images_per_minute": 60, "window_s": 1.0}}})


def ledger_cost(core) -> float:
    return round(sum(e.cost_usd for e in core.store.events() if e.kind in ("generated", "spool_ingest")), 8)


def test_generate_records_exact_cost_then_cache_hit(oa, openai_env):
    core = oa()
    report = core.generate(["demo"], "month")
    assert report.count("generated") == 1
    assert len(openai_env.ledger) == 1
    served = openai_env.ledger[0]
    assert served["model"] == "gpt-image-2-2026-04-21" and served["quality"] == "medium"
    params = openai_env.requests[0]["params"]
    assert (params["size"], params["output_format"], params["n"]) == ("1024x1024", "png", 1)
    assert "input_fidelity" not in params  # gpt-image-2 must not get it
    assert params["safety_identifier"] == safety_identifier("demo") != "demo"
    assert ledger_cost(core) == pytest.approx(openai_env.billed_usd(GPT_IMAGE_2), abs=1e-9)
    rec = report.outcomes[0].record
    assert rec.cost_usd == pytest.approx(openai_env.billed_usd(GPT_IMAGE_2)) and rec.request_id.startswith("req_")
    again = core.generate(["demo"], "month")
    assert again.count("cached") == 1 and again.cost_usd == 0
    assert len(openai_env.ledger) == 1 and len(openai_env.requests) == 1


def test_later_stages_are_edits_with_anchor_and_previous(oa, openai_env):
    core = oa()
    core.generate(["maya"], "newReflection")
    core.generate(["maya"], "month")
    core.generate(["maya"], "quarter")
    paths = [r["path"] for r in openai_env.requests]
    assert paths == ["/v1/images/generations", "/v1/images/edits", "/v1/images/edits"]
    records = {r.target: r for r in core.store.list_avatars("maya")}
    sha = {t: hashlib.sha256(core.store.read_image(r.image_path)).hexdigest() for t, r in records.items()}
    month_refs = openai_env.requests[1]["references"]
    assert [r["sha256"] for r in month_refs] == [sha["newReflection"]]
    quarter_refs = openai_env.requests[2]["references"]
    assert [r["sha256"] for r in quarter_refs] == [sha["newReflection"], sha["month"]]
    assert all(r["content_type"] == "image/webp" and r["field"] == "image[]" for r in quarter_refs)
    prompt = openai_env.requests[2]["params"]["prompt"]
    assert prompt.startswith("Image 1 is the identity anchor") and "Image 2 is the previous stage" in prompt
    assert "Image 2" not in openai_env.requests[1]["params"]["prompt"]
    assert [r.role for r in records["quarter"].references] == ["identity anchor", "previous stage"]


@pytest.mark.parametrize(
    "fault",
    [rate_limit_fault(0.01), Fault(500), Fault(503, code=None)],
    ids=["429", "500", "503"],
)
def test_transient_failures_are_retried(oa, openai_env, fault, tmp_path):
    openai_env.push(fault, fault)
    report = oa(config_dir=_scaled_minute(tmp_path)).generate(["demo"], "month")
    assert report.count("generated") == 1
    assert report.retries.retries == 2
    assert len(openai_env.requests) == 3 and len(openai_env.ledger) == 1


def test_timeout_is_retried_once_and_booked_as_may_have_billed(oa, openai_env):
    openai_env.slow_next.append(3.0)  # billed, answered after the client gave up (request_timeout_s=2)
    core = oa()
    report = core.generate(["demo"], "month")
    assert report.count("generated") == 1 and report.retries.retries == 1 and report.retries.unanswered == 1
    assert len(openai_env.ledger) == 2  # the server billed both
    maybe = [e for e in core.store.events() if e.kind == "may_have_billed"]
    assert len(maybe) == 1 and maybe[0].cost_usd == pytest.approx(report.outcomes[0].estimate_usd)
    assert report.summary()["may_have_billed_usd"] == pytest.approx(maybe[0].cost_usd)
    usage = core.usage()
    assert usage.may_have_billed == 1 and usage.may_have_billed_usd == pytest.approx(maybe[0].cost_usd)
    # confirmed spend is exactly the answer kept; the unanswered request is booked at its estimate
    billed = openai_env.billed_usd(GPT_IMAGE_2)
    kept = openai_env.ledger[1]["usage"]  # the retry's answer, the one the client read
    p = GPT_IMAGE_2
    text, image = kept["input_tokens_details"]["text_tokens"], kept["input_tokens_details"]["image_tokens"]
    assert usage.cost_usd == pytest.approx(
        (text * p["text_in"] + image * p["image_in"] + kept["output_tokens"] * p["image_out"]) / 1e6
    )
    spend = usage.cost_usd + usage.may_have_billed_usd
    assert billed - 1e-9 <= spend <= billed + report.outcomes[0].estimate_usd + 1e-9


def test_unanswered_requests_are_retried_at_most_once(oa, openai_env):
    openai_env.push(Fault(drop=True), Fault(drop=True), Fault(drop=True))
    core = oa()
    report = core.generate(["demo"], "month")
    assert report.count("failed") == 1 and len(openai_env.requests) == 2  # first + one retry
    assert report.outcomes[0].may_have_billed_usd == pytest.approx(2 * report.outcomes[0].estimate_usd)
    assert [e.kind for e in core.store.events()].count("may_have_billed") == 2


def test_connect_failure_is_not_booked(make_core, openai_env, fast_configs):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: the request never leaves
    core = make_core(provider="openai", base_url=f"http://127.0.0.1:{port}/v1", config_dir=fast_configs)
    report = core.generate(["demo"], "month")
    assert report.count("failed") == 1 and report.retries.unanswered == 0
    assert not [e for e in core.store.events() if e.kind == "may_have_billed"]


def test_retry_after_is_honoured(oa, openai_env, tmp_path):
    openai_env.push(Fault(429, "requests", "rate_limit_exceeded", "Rate limit reached. Please try again in 0.3s."))
    report = oa(config_dir=_scaled_minute(tmp_path)).generate(["demo"], "month")
    assert report.count("generated") == 1 and report.retries.waited_s >= 0.3


def test_gives_up_after_max_attempts(oa, openai_env):
    openai_env.push(*[Fault(500)] * 10)
    report = oa().generate(["demo"], "month")
    assert report.count("failed") == 1 and len(openai_env.requests) == 4
    assert [e.kind for e in oa().store.events()] == ["failed"]


@pytest.mark.parametrize(
    "fault,code",
    [
        (quota_fault(), "insufficient_quota"),
        (billing_fault(), "billing_hard_limit_reached"),
        (auth_fault(), "invalid_api_key"),
        (verify_fault(), None),
    ],
    ids=["quota", "billing", "401", "403"],
)
def test_stop_the_whole_run_at_once(oa, openai_env, fault, code):
    openai_env.push(fault)
    core = oa(concurrency=1)
    report = core.generate(None, "month")  # every user
    assert report.stopped and len(openai_env.requests) == 1  # never retried, nobody else tried
    assert report.count("generated") == 0
    failed = [e for e in core.store.events() if e.kind == "failed"]
    assert len(failed) == 1 and (code is None or code in failed[0].detail)
    run = core.store.get_run(report.run_id)
    assert run.state == "stopped"
    assert {s.state for s in core.store.job_states(run.id)} == {"pending"}


def test_stop_exit_code_and_hint_through_cli(openai_env, fast_configs, data_dir):
    openai_env.push(quota_fault())
    import_examples(data_dir)
    res = CliRunner().invoke(
        app,
        [
            "generate",
            "--user",
            "demo",
            "--stage",
            "month",
            *openai_flags(openai_env.url, fast_configs, data_dir),
            "--json",
        ],
    )
    assert res.exit_code == ExitCode.STOPPED
    assert "quota" in json.loads(res.stdout)["summary"]["stopped"].lower()


def test_moderation_block_retries_once_with_safe_prompt(oa, openai_env):
    openai_env.push(moderation_fault())
    core = oa()
    core.set_progress("maya", core.persona("maya").progress.model_copy(update={"discovered_traits": ["fierce"]}))
    report = core.generate(["maya"], "month")
    assert report.count("generated") == 1
    first, second = (r["params"]["prompt"] for r in openai_env.requests)
    assert "fierce" in first and "fierce" not in second
    assert core.configs.style.safe_prompt.strip() in second
    assert [e.kind for e in core.store.events()] == ["blocked", "generated"]


def test_moderation_block_twice_serves_fallback(oa, openai_env):
    openai_env.push(moderation_fault(), moderation_fault())
    core = oa()
    report = core.generate(["maya"], "month")
    out = report.outcomes[0]
    assert out.status == "blocked" and "moderation" in out.reason
    assert len(openai_env.requests) == 2 and openai_env.ledger == []
    assert out.served_path is None or "fallback_assets" in out.served_path


def test_retired_model_fails_before_any_request(oa, openai_env):
    with pytest.raises(RunStoppedError) as err:
        oa(model="gpt-image-1").generate(["demo"], "month")
    assert "2026-10-23" in err.value.message and "gpt-image-2.5-sunburst" in err.value.hint
    assert openai_env.requests == []


def test_missing_key_is_a_clear_error(make_core, monkeypatch, fast_configs):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    core = make_core(provider="openai", config_dir=fast_configs)
    with pytest.raises(ConfigError) as err:
        core.generate(["demo"], "month")
    assert "OPENAI_API_KEY" in err.value.message and "--provider local" in err.value.hint


def test_dry_run_without_key_then_a_real_run_on_the_same_core_is_refused(
    make_core, monkeypatch, fast_configs, openai_server
):
    """A long-lived core (mirror serve) that estimated once without a key must not send later."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    core = make_core(provider="openai", base_url=openai_server.url, config_dir=fast_configs)
    planned = core.generate(["demo"], "month", dry_run=True)
    assert planned.count("planned") == 1 and planned.cost_usd == 0
    real = core.generate(["demo"], "month")
    (outcome,) = real.outcomes
    assert outcome.status == "failed" and "No OpenAI API key" in (outcome.reason or "")
    assert outcome.cost_usd == 0 and real.may_have_billed_usd == 0
    assert openai_server.requests == [] and openai_server.ledger == []


def test_key_from_secrets_file_and_never_printed(make_core, monkeypatch, fast_configs, tmp_path, openai_server):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    secret = "sk-proj-SECRETSECRETSECRET123"
    f = tmp_path / "secrets.env"
    f.write_text(f"OPENAI_API_KEY={secret}\n")
    openai_server.push(auth_fault())
    import_examples(tmp_path / "d")
    res = CliRunner().invoke(
        app,
        [
            "generate",
            "--user",
            "demo",
            "--stage",
            "month",
            *openai_flags(openai_server.url, fast_configs, tmp_path / "d"),
        ],
        env={"MIRROR_SECRETS_FILE": str(f)},
    )
    assert res.exit_code == ExitCode.STOPPED
    assert secret not in res.output and "SECRET" not in res.output
    assert openai_server.requests[0]["auth"] == hashlib.sha256(f"Bearer {secret}".encode()).hexdigest()[:8]


def test_doctor_checks_model_availability(oa, openai_env):
    checks = {c["check"]: c for c in oa().doctor()}
    assert checks["model availability"]["status"] == "ok"
    assert checks["api key"]["status"] == "ok" and "sk-" not in checks["api key"]["detail"]
    openai_env.known_models.pop("gpt-image-2-2026-04-21")
    checks = {c["check"]: c for c in oa().doctor()}
    assert checks["model availability"]["status"] == "fail"


def before_shutdown(model: str, days: int) -> PinnedClock:
    """A clock ``days`` before ``model``'s shutdown date in the shipped models.yaml."""
    shutdown = ConfigSet(CONFIGS, "daymi").models.models[model].shutdown_date
    assert shutdown is not None
    return PinnedClock(datetime.combine(shutdown, time(12), UTC) - timedelta(days=days))


def test_doctor_warns_about_model_shutting_down(oa):
    clock = before_shutdown("gpt-image-1.5", 10)
    checks = {c["check"]: c for c in oa(model="gpt-image-1.5", now=clock).doctor()}
    shutdown = (clock() + timedelta(days=10)).date().isoformat()
    assert checks["model"]["status"] == "warn" and shutdown in checks["model"]["detail"]


def test_input_fidelity_only_for_models_that_take_it(oa, openai_env):
    core = oa(model="gpt-image-1.5", now=before_shutdown("gpt-image-1.5", 30))
    core.generate(["kenji"], "newReflection")
    core.generate(["kenji"], "firstWeek")
    assert "input_fidelity" not in openai_env.requests[0]["params"]
    assert openai_env.requests[1]["params"]["input_fidelity"] == "high"

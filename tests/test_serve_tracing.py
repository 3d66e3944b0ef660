"""OpenTelemetry spans for one request and its job, captured with the SDK's in-memory exporter
from a real request through the real server: the caller's traceparent continued, the job's steps
(claim, reserve, provider, settle, post-processing, store) as child spans in the same trace, no
user id in any span; JSON log lines carry the trace in the field Cloud Logging correlates."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serve_support import auth_env, bearer, live, new_user, serve_settings

from mirror_cli.telemetry import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.uninstall()


def test_a_request_and_its_job_are_one_trace(serve_settings, live, auth_env, spans, capfd, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-proj")
    server = live(serve_settings())
    uid, token = new_user(auth_env, server.service.core.store)
    headers = {**bearer(token), "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
    r = httpx.post(
        server.url + "/api/v1/avatar/generate",
        json={"user_id": uid, "evolution_stage": "month"},
        headers=headers,
        timeout=60,
    )
    assert r.status_code == 200, r.text

    deadline = time.monotonic() + 10  # the server span ends just after the answer is sent
    while not any(s.name.startswith("POST ") for s in spans.get_finished_spans()) and time.monotonic() < deadline:
        time.sleep(0.02)
    finished = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    assert "POST /api/v1/avatar/generate" in by_name, sorted(by_name)
    request = by_name["POST /api/v1/avatar/generate"]
    assert format(request.context.trace_id, "032x") == TRACE_ID  # the caller's trace, continued
    assert format(request.parent.span_id, "016x") == PARENT
    assert request.attributes["http.route"] == "/api/v1/avatar/generate"
    assert request.attributes["http.response.status_code"] == 200

    job = by_name["mirror.job"]
    assert job.parent.span_id == request.context.span_id and job.attributes["target"] == "month"
    steps = [
        "mirror.claim",
        "mirror.reserve",
        "mirror.provider",
        "mirror.settle",
        "mirror.post_process",
        "mirror.store",
    ]
    for name in steps:
        step = by_name[name]
        assert step.context.trace_id == request.context.trace_id
        assert step.parent.span_id == job.context.span_id, name
    order = sorted(steps, key=lambda n: by_name[n].start_time)
    assert order.index("mirror.claim") < order.index("mirror.reserve") < order.index("mirror.provider")
    assert order.index("mirror.provider") < order.index("mirror.settle") < order.index("mirror.store")

    for s in finished:  # no user id in a span's name or attributes
        assert uid not in s.name and all(uid not in str(v) for v in (s.attributes or {}).values())

    # the access line: JSON with severity, message and the trace Cloud Logging correlates
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    access = next(x for x in lines if x.get("kind") == "access" and x["path"] == "/api/v1/avatar/generate")
    assert access["severity"] == "INFO" and access["message"].startswith("POST /api/v1/avatar/generate 200")
    assert access["logging.googleapis.com/trace"] == f"projects/demo-proj/traces/{TRACE_ID}"
    assert access["logging.googleapis.com/spanId"] == format(request.context.span_id, "016x")
    assert token not in json.dumps(lines)


def test_tracing_is_off_by_default(monkeypatch):
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    assert not tracing.configured_in_env() and not tracing.enabled()
    assert tracing.current_trace_id() is None
    with tracing.span("mirror.job") as nothing:
        assert nothing is None  # no SDK, no span
    assert tracing.configured_in_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.configured_in_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}
    )


def test_an_otlp_endpoint_alone_samples_one_trace_in_ten(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: never reached
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    try:
        assert tracing.configure_from_env() and tracing.enabled()
        description = tracing._provider.sampler.get_description()
        assert "ParentBased" in description and "TraceIdRatioBased{0.1}" in description
    finally:
        tracing.uninstall()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    try:
        assert tracing.configure_from_env()
        assert "AlwaysOnSampler" in tracing._provider.sampler.get_description()
    finally:
        tracing.uninstall()
    assert not tracing.enabled()


def test_json_logs_carry_severity_message_trace_and_no_secrets(monkeypatch):
    import io
    import logging

    from mirror_cli.errors import register_secret
    from mirror_cli.telemetry import logs

    key = register_secret("sk-live-" + "z" * 30)
    out = io.StringIO()
    logs.configure(("mirror.test_logs",), out, project="demo-proj")
    log = logging.getLogger("mirror.test_logs.child")
    token = logs.set_incoming(f"00-{TRACE_ID}-{PARENT}-01")
    try:
        log.warning("provider refused key %s", key)
        try:
            raise RuntimeError("Authorization: Bearer abcdefghijklmnop")
        except RuntimeError:
            log.exception("job failed")
    finally:
        logs.reset_incoming(token)
    log.info("outside a request")
    first, second, third = (json.loads(x) for x in out.getvalue().splitlines())
    assert first["severity"] == "WARNING" and first["message"] == "provider refused key [redacted]"
    assert first["logging.googleapis.com/trace"] == f"projects/demo-proj/traces/{TRACE_ID}"
    assert first["logging.googleapis.com/spanId"] == PARENT and first["logging.googleapis.com/trace_sampled"] is True
    assert second["severity"] == "ERROR" and "RuntimeError" in second["message"]
    assert "abcdefghijklmnop" not in second["message"]
    assert third["severity"] == "INFO" and "logging.googleapis.com/trace" not in third
    assert logs.parse_traceparent("00-" + "0" * 32 + "-" + PARENT + "-01") is None  # an all-zero trace id
    assert logs.parse_traceparent("garbage") is None

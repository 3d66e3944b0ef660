"""OpenTelemetry traces: off by default, OTLP when configured, an in-memory exporter in tests.

Switched on by the standard OpenTelemetry variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) names the collector; ``OTEL_SERVICE_NAME`` (default
``mirror``), ``OTEL_EXPORTER_OTLP_HEADERS`` and ``OTEL_TRACES_SAMPLER`` are honoured by the SDK;
``OTEL_SDK_DISABLED=true`` keeps it off. Without ``OTEL_TRACES_SAMPLER`` one trace in ten is
sampled (``parentbased_traceidratio`` at 0.1: a caller's sampled ``traceparent`` is always
followed); ``OTEL_TRACES_SAMPLER=parentbased_always_on`` traces every request, at a CPU cost
bench/telemetry_overhead.py measures. When off, ``span`` is a no-op and the SDK is never
imported. Spans carry no user id, token or prompt: only targets, stages, routes and statuses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

DEFAULT_RATIO = 0.1  # traces sampled when OTEL_TRACES_SAMPLER does not say
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def enabled() -> bool:
    return _tracer is not None


def configured_in_env(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure_from_env() -> bool:
    """Export spans by OTLP over HTTP when the environment names a collector; True if on."""
    if _tracer is not None:
        return True
    if not configured_in_env():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from .. import __version__

    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "mirror"), "service.version": __version__}
    )
    sampler = None
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        sampler = ParentBased(TraceIdRatioBased(DEFAULT_RATIO))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    return True


def install(provider: TracerProvider) -> None:
    """Trace through ``provider`` (tests pass one with an InMemorySpanExporter)."""
    global _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("mirror_cli")


def uninstall() -> None:
    """Stop tracing; flush and shut down the provider this module installed."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        provider.shutdown()


def span(name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """A context manager: a span (child of the current one) when tracing is on, else nothing."""
    if _tracer is None:
        return nullcontext()
    return _tracer.start_as_current_span(name, attributes=dict(attributes) if attributes else None)


@contextmanager
def server_span(name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[Any]:
    """A SERVER span continuing the caller's W3C ``traceparent`` (Cloud Run sends one)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        name, context=extract(headers) if headers else None, kind=SpanKind.SERVER, attributes=dict(attributes)
    ) as current:
        yield current


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (None when no span is recording)."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None

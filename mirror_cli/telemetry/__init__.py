"""Observability: job timings, Prometheus metrics, OpenTelemetry traces, JSON logs, alerts.

Nothing here is imported by ``mirror --help``: prometheus-client and OpenTelemetry load only
when metrics or tracing are switched on (``mirror serve``, ``--metrics-file``, OTLP settings).
The pipeline calls two hooks from :mod:`.timing` (``job_clock`` and ``step``); with metrics and
tracing off they cost a few clock reads per job.
"""

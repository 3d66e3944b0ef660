"""Structured JSON logs in the shape Cloud Logging parses: ``severity``, ``message``, ``time``,
and the trace in ``logging.googleapis.com/trace`` (``projects/PROJECT/traces/TRACE_ID``) with its
``spanId``, so a log line opens next to its request's trace. Messages pass through the same
redaction as every error (configured keys by value, anything shaped like a key or a token).

The trace id comes from the current OpenTelemetry span when tracing is on, else from the
request's own W3C ``traceparent`` header (Cloud Run sends one), so lines correlate even with
tracing off. The project is ``GOOGLE_CLOUD_PROJECT`` (or the Firebase project).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from ..errors import redact
from . import tracing

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

# (trace id, span id, sampled) of the request being served, read from its traceparent header
_incoming: ContextVar[tuple[str, str, bool] | None] = ContextVar("mirror_incoming_trace", default=None)
_project: str | None = None


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """W3C traceparent ``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>``; None if malformed."""
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return parts[1].lower(), parts[2].lower(), bool(flags & 1)


def set_incoming(value: str | None) -> Any:
    """Remember the request's traceparent for its log lines; returns a token for ``reset_incoming``."""
    return _incoming.set(parse_traceparent(value))


def reset_incoming(token: Any) -> None:
    _incoming.reset(token)


def set_project(project: str | None) -> None:
    global _project
    _project = project


def trace_fields() -> dict[str, Any]:
    """The trace fields of the current log line (empty outside a traced request)."""
    found: tuple[str, str, bool] | None = None
    if tracing.enabled():
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            found = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), ctx.trace_flags.sampled)
    if found is None:
        found = _incoming.get()
    if found is None:
        return {}
    trace_id, span_id, sampled = found
    project = _project or os.environ.get("GOOGLE_CLOUD_PROJECT")
    return {
        TRACE_FIELD: f"projects/{project}/traces/{trace_id}" if project else trace_id,
        SPAN_FIELD: span_id,
        SAMPLED_FIELD: sampled,
    }


def line(severity: str, message: str, **fields: Any) -> str:
    """One JSON log line (for writers that do not go through ``logging``, like the access log)."""
    body = {
        "severity": severity,
        "message": redact(message),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **fields,
        **trace_fields(),
    }
    return json.dumps(body, default=str)


class CloudJsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return line(_SEVERITY.get(record.levelno, "DEFAULT"), message, logger=record.name)


_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


def configure(names: tuple[str, ...] = ("mirror",), stream: TextIO | None = None, project: str | None = None) -> None:
    """Send these loggers (and their children) to ``stream`` as JSON lines, at INFO and above."""
    set_project(project or os.environ.get("GOOGLE_CLOUD_PROJECT"))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(CloudJsonFormatter())
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False

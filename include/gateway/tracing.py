"""The gateway's server spans: W3C trace context in, one SERVER span per request out.

The gateway stands alone (it imports nothing of Segue), like the card processor it plays, so it
sets up OpenTelemetry itself: on only when an OTLP endpoint is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); otherwise the app
gets no middleware at all.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import Request
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None


def configure_tracing(exporter: SpanExporter | None = None) -> bool:
    """Trace requests if an OTLP endpoint is configured (or ``exporter`` is given); True if on.

    :param exporter: where spans go (default: OTLP/HTTP to the configured endpoint).
    """
    global _tracer
    if exporter is None:
        names = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        if not any(os.environ.get(name) for name in names):
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "gateway"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = provider.get_tracer("segue.gateway")
    return True


def enabled() -> bool:
    """True once :func:`configure_tracing` turned tracing on."""
    return _tracer is not None


async def traced_request(request: Request, call_next: Any) -> Any:
    """Handle ``request`` in a SERVER span, the child of the caller's ``traceparent``.

    :param request: the incoming request.
    :param call_next: the rest of the app.
    """
    if _tracer is None:
        return await call_next(request)
    attributes = {"http.request.method": request.method, "url.path": request.url.path}
    key = request.headers.get("idempotency-key")
    if key:
        attributes["segue.idempotency_key"] = key
    parent = _PROPAGATOR.extract(dict(request.headers))
    name = f"gateway {request.method} {request.url.path}"
    with _tracer.start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        response = await call_next(request)
        span.set_attribute("http.response.status_code", response.status_code)
        return response

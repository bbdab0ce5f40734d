"""One trace per order across every process: OpenTelemetry setup and the spans Segue opens.

Every process calls :func:`configure_tracing` once. With no OTLP endpoint configured
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, the standard
variables) tracing stays off: every helper here returns at its first line (a ``nullcontext`` or
None), so a message or a step pays one global read. With one, spans go out over OTLP/HTTP in
batches.

How the paths meet in one trace: an order's trace id and the span id of its root span are
derived from the order id (:func:`order_context`). The intake opens the root span with those
ids (:func:`order_root`); every later step that knows only the order id (a DAG task, a saga
transition) opens its span as a child of that root, in whichever process and however late; an
event carries its ``traceparent`` and the span of its handler is the child of it; an HTTP call
carries ``traceparent`` in its headers. A span opened while another trace's span is current (an
Airflow task's own ``worker.<task>`` span) links to it, so the two traces point at each other.

The provider is this module's own, not OpenTelemetry's global one, so Airflow's tracing (its
``[traces]`` section, its own global provider) and ours never replace each other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from segue.trace_ids import order_context, order_trace_id, remote_context, traceparent_of

__all__ = [
    "configure_tracing",
    "current_traceparent",
    "enabled",
    "ensure_configured",
    "flush",
    "inject",
    "install",
    "link_enclosing",
    "log_fields",
    "order_context",
    "order_root",
    "order_trace_id",
    "record_published",
    "span",
    "traceparent_of",
]

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()
_PROPAGATOR = TraceContextTextMapPropagator()
_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("segue_forced_ids", default=None)
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_configured = False


class _OrderIdGenerator(RandomIdGenerator):
    """Random ids, except for an order's root span, whose ids derive from the order id."""

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else super().generate_span_id()


def endpoint_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when the standard OTLP endpoint variables name somewhere to send traces.

    :param environ: the environment (default: this process's).
    """
    environ = os.environ if environ is None else environ
    return any(environ.get(name) for name in ENDPOINT_VARIABLES)


def configure_tracing(
    service: str, *, exporter: SpanExporter | None = None, batch: bool = True
) -> bool:
    """Turn tracing on for this process if an OTLP endpoint is configured (or ``exporter``
    is given); True if it is on. Calling it again replaces the provider (tests do).

    :param service: the ``service.name`` of this process's spans.
    :param exporter: where spans go (default: OTLP/HTTP to the configured endpoint).
    :param batch: export in the background in batches (False: at each span's end, for
        short-lived processes and tests).
    """
    global _configured
    _configured = True
    if exporter is None:
        if not endpoint_configured():
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    processor: SpanProcessor = (
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        id_generator=_OrderIdGenerator(),
        shutdown_on_exit=True,
    )
    provider.add_span_processor(processor)
    install(provider)
    return True


def ensure_configured(service: str) -> bool:
    """:func:`configure_tracing` once per process (for code that runs inside another's
    process, such as an Airflow task); True if tracing is on.

    :param service: the ``service.name`` if this call sets tracing up.
    """
    if not _configured:
        configure_tracing(service, batch=False)
    return _tracer is not None


def install(provider: TracerProvider | None) -> None:
    """Use ``provider`` for Segue's spans from now on (None: tracing off).

    :param provider: a configured SDK provider, or None.
    """
    global _provider, _tracer
    previous, _provider = _provider, provider
    _tracer = provider.get_tracer("segue") if provider is not None else None
    if previous is not None and previous is not provider:
        previous.shutdown()


def enabled() -> bool:
    """True while spans are recorded."""
    return _tracer is not None


def flush(timeout_millis: int = 5_000) -> None:
    """Export what is buffered now (a task process may exit without running atexit hooks).

    :param timeout_millis: how long to wait for the exporter.
    """
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def current_traceparent(trace_id: str | None = None) -> str | None:
    """The ``traceparent`` of the span open now, if tracing is on and it is in ``trace_id``.

    An event or a request made inside a span names that span as its parent; None tells the
    caller to fall back to a traceparent of its own.

    :param trace_id: the trace the caller belongs in (None: any).
    """
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or (trace_id is not None and f"{context.trace_id:032x}" != trace_id):
        return None
    return traceparent_of(context)


def _parent(traceparent: str | None, order_id: str | None) -> Context | None:
    if traceparent:
        remote = remote_context(traceparent)
        if remote is not None:
            return trace.set_span_in_context(NonRecordingSpan(remote))
    if order_id:
        return trace.set_span_in_context(NonRecordingSpan(order_context(order_id)))
    return None


def _links(parent: Context | None) -> list[Link]:
    """A link to the current span when the new span's parent is in another trace."""
    current = trace.get_current_span().get_span_context()
    if parent is None or not current.is_valid:
        return []
    if trace.get_current_span(parent).get_span_context().trace_id == current.trace_id:
        return []
    return [Link(current, {"segue.link": "enclosing span of another trace"})]


@contextlib.contextmanager
def _open(
    name: str, parent: Context | None, attributes: Mapping[str, Any], kind: SpanKind
) -> Iterator[Span]:
    assert _tracer is not None
    with _tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=dict(attributes), links=_links(parent)
    ) as span:
        yield span


def span(
    name: str,
    *,
    traceparent: str | None = None,
    order_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> contextlib.AbstractContextManager[Span | None]:
    """A span around a step, made current; a no-op (yields None) while tracing is off.

    Its parent is ``traceparent`` when given (an event's, a request's), else the root span of
    ``order_id``'s trace, else the span open now.

    :param name: what the step is.
    :param traceparent: the W3C parent (e.g. the event being handled).
    :param order_id: the order whose trace the span belongs to.
    :param attributes: span attributes (``segue.order_id`` is added from ``order_id``).
    :param kind: the span kind (SERVER for a request handled, CLIENT for one made).
    """
    if _tracer is None:
        return _OFF
    attributes = dict(attributes or {})
    if order_id:
        attributes.setdefault("segue.order_id", order_id)
    return _open(name, _parent(traceparent, order_id), attributes, kind)


@contextlib.contextmanager
def _root(order_id: str, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    context = order_context(order_id)
    token = _forced_ids.set((context.trace_id, context.span_id))
    try:
        assert _tracer is not None
        span = _tracer.start_span(
            name, context=Context(), attributes={"segue.order_id": order_id, **attributes}
        )
    finally:
        _forced_ids.reset(token)
    with trace.use_span(span, end_on_exit=True):
        yield span


def order_root(
    order_id: str, name: str = "order", attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """The order's root span (ids derived from the order id), made current; open it once,
    where the order enters (the intake). A no-op while tracing is off.

    :param order_id: the order.
    :param name: the span's name.
    :param attributes: span attributes.
    """
    if _tracer is None:
        return _OFF
    return _root(order_id, name, attributes or {})


def link_enclosing(order_id: str) -> None:
    """Point the span open now (an Airflow task's ``worker.<task>`` span, of Airflow's own
    trace) at the order's trace: a link to the order's root span and ``segue.order_id``.

    :param order_id: the order the enclosing work is for.
    """
    if _tracer is None:
        return
    current = trace.get_current_span()
    root = order_context(order_id)
    if current.is_recording() and current.get_span_context().trace_id != root.trace_id:
        current.add_link(root, {"segue.link": "the order's trace"})
        current.set_attribute("segue.order_id", order_id)
        current.set_attribute("segue.trace_id", f"{root.trace_id:032x}")


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current span's ``traceparent`` to outgoing HTTP headers (nothing when off).

    :param headers: the request's headers, changed in place and returned.
    """
    if _tracer is not None:
        _PROPAGATOR.inject(headers)
    return headers


def record_published(source: str, traceparents: Iterable[tuple[str, str]], start_ns: int) -> None:
    """One span per event a relay published, each the child of the span that emitted it.

    :param source: the relay's source (the service).
    :param traceparents: (event type, traceparent) of each published event.
    :param start_ns: when the batch's publishing started (``time.time_ns()``).
    """
    if _tracer is None:
        return
    for event_type, traceparent in traceparents:
        parent = _parent(traceparent, None)
        attributes = {"segue.source": source, "messaging.system": "rabbitmq"}
        name = f"{source} relay {event_type}"
        _tracer.start_span(
            name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes, start_time=start_ns
        ).end()


def log_fields() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the span open now, for log lines (empty when none).

    Reads OpenTelemetry's current span whatever provider made it, so an Airflow task's log
    lines carry the trace too.
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}

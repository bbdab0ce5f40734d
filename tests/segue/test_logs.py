"""The services' JSON lines (structlog): a record's ``extra=`` fields, the order's bound fields
and the open span's trace id land as top-level keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from include.payments.events import OrderPlaced
from segue import tracing
from segue.events.envelope import Envelope, trace_id_of
from segue.logs import configure_json_logging, order_log_context
from tests.conftest import order_of


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """JSON logging configured into a buffer (the root logger restored afterwards)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_json_logging("test-service", stream=buffer)
    yield buffer
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


def lines_of(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_extra_fields_and_bound_order_fields_become_keys(json_lines, order_data) -> None:
    order = order_of(order_data(order_id="ord-log-1"))
    envelope = Envelope.create(OrderPlaced(order=order), source="t", subject=order.order_id)
    log = logging.getLogger("segue.test")
    log.info("handled %s", envelope.type, extra=envelope.log_context())
    with order_log_context("ord-log-2", step="charge"):
        log.warning("step charge failed")
        structlog.get_logger("segue.test").info("from structlog", amount="49.99")
    first, second, third = lines_of(json_lines)
    assert first["message"] == f"handled {envelope.type}" and first["level"] == "INFO"
    assert first["service"] == "test-service" and first["logger"] == "segue.test"
    assert first["correlation_id"] == "ord-log-1" and first["event_id"] == envelope.id
    assert first["trace_id"] == trace_id_of(envelope.traceparent)
    assert first["trace_id"] == tracing.order_trace_id("ord-log-1")
    for line in (second, third):
        assert line["order_id"] == "ord-log-2" and line["step"] == "charge"
        assert line["trace_id"] == tracing.order_trace_id("ord-log-2")
    assert third["amount"] == "49.99" and third["message"] == "from structlog"


def test_a_traced_line_names_the_open_span(json_lines) -> None:
    tracing.configure_tracing("test", exporter=InMemorySpanExporter(), batch=False)
    try:
        with tracing.span("step", order_id="ord-log-3") as span, order_log_context("ord-log-3"):
            logging.getLogger("segue.test").info("inside")
    finally:
        tracing.install(None)
    [line] = lines_of(json_lines)
    assert line["trace_id"] == tracing.order_trace_id("ord-log-3")
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"

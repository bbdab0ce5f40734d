"""segue.tracing on the SDK's in-memory exporter: the order's trace derived from its id, spans
parented by traceparent or order, links to another trace's enclosing span, and nothing at all
while tracing is off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from include.payments.events import OrderPlaced
from segue import tracing
from segue.events.envelope import Envelope, trace_id_of
from segue.step_runner import run_step
from tests.conftest import order_of


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    assert tracing.configure_tracing("test", exporter=memory, batch=False)
    yield memory
    tracing.install(None)


def test_off_without_an_endpoint_every_helper_is_a_no_op(monkeypatch, order_data) -> None:
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    tracing.install(None)
    assert not tracing.configure_tracing("test")
    with tracing.span("x", order_id="ord-1") as span, tracing.order_root("ord-1") as root:
        assert span is None and root is None
        assert tracing.current_traceparent() is None
    assert tracing.inject({}) == {}
    order = order_of(order_data(order_id="ord-off-1"))
    placed = Envelope.create(OrderPlaced(order=order), source="t", subject=order.order_id)
    assert trace_id_of(placed.traceparent) == tracing.order_trace_id("ord-off-1")


def test_the_order_root_and_every_later_step_share_the_trace_derived_from_the_id(
    exporter, order_data
) -> None:
    order = order_of(order_data(order_id="ord-trace-1"))
    with tracing.order_root(order.order_id, "order placed"):
        placed = Envelope.create(OrderPlaced(order=order), source="t", subject=order.order_id)
    with tracing.span("handle", traceparent=placed.traceparent):
        caused = Envelope.create(
            OrderPlaced(order=order), source="v", subject=order.order_id, caused_by=placed
        )
    with tracing.span("saga step", order_id=order.order_id):
        pass
    root, handler, step = exporter.get_finished_spans()
    expected = tracing.order_context(order.order_id)
    assert (root.context.trace_id, root.context.span_id) == (expected.trace_id, expected.span_id)
    assert root.parent is None
    assert placed.traceparent == tracing.traceparent_of(root.context)
    assert handler.parent.span_id == root.context.span_id
    assert caused.traceparent == tracing.traceparent_of(handler.context)
    assert step.parent.span_id == expected.span_id and step.context.trace_id == expected.trace_id
    assert step.attributes["segue.order_id"] == "ord-trace-1"
    assert tracing.order_trace_id("ord-trace-1") != tracing.order_trace_id("ord-trace-2")


def test_a_span_inside_another_traces_span_links_both_ways(exporter) -> None:
    with tracing.span("airflow worker.charge") as enclosing:  # stands for Airflow's task span
        tracing.link_enclosing("ord-link-1")
        with tracing.span("step charge", order_id="ord-link-1"):
            headers = tracing.inject({})
    step, worker = exporter.get_finished_spans()
    order = tracing.order_context("ord-link-1")
    assert step.context.trace_id == order.trace_id != worker.context.trace_id
    assert [link.context.span_id for link in step.links] == [enclosing.get_span_context().span_id]
    assert [link.context.span_id for link in worker.links] == [order.span_id]
    assert worker.attributes["segue.trace_id"] == f"{order.trace_id:032x}"
    assert headers["traceparent"] == tracing.traceparent_of(step.context)


def test_a_step_records_its_failure_on_its_span(exporter) -> None:
    def declined() -> None:
        raise RuntimeError("gateway down")

    with pytest.raises(RuntimeError):
        run_step(
            declined,
            engine=None,  # a retryable failure with attempts left touches no store
            workflow="payment_pipeline",
            step="charge",
            subject="ord-step-1",
            payload={},
            attempt=1,
            max_attempts=3,
        )
    [span] = exporter.get_finished_spans()
    assert span.name == "payment_pipeline charge" and span.status.status_code == StatusCode.ERROR
    assert span.context.trace_id == tracing.order_context("ord-step-1").trace_id
    assert span.attributes["segue.attempt"] == 1

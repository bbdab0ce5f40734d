"""One connected trace per order on the event path: real services, RabbitMQ and the gateway
export over OTLP/HTTP to a receiver in the test, and each order's spans form one tree.

The intake opens the order's root span (ids derived from the order id); each service's handler
span is the child of the ``traceparent`` its event carried, each relay's publish span the child
of the span that emitted the event, and the gateway's server span the child of the charge
service's client span (W3C ``traceparent`` over HTTP).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from segue.tracing import order_context, order_trace_id
from tests.faults.conftest import Choreography, OrderFactory, raw_order, run_choreography
from tests.otlp_receiver import Receiver, assert_one_connected_trace, otlp_receiver
from tools.gateway import start_gateway

HAPPY = {"intake", "validation", "inventory", "charge", "receipt", "shipping", "gateway"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture
def traced_gateway(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """A gateway of its own that exports its server spans to the receiver."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    with start_gateway(failure_rate=0, log_path=tmp_path / "gateway.log") as gateway:
        yield gateway.url


@pytest.fixture
def traced(
    fresh_amqp_url: str, engine: Engine, traced_gateway: str, receiver: Receiver, tmp_path: Path
) -> Iterator[Choreography]:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with run_choreography(
        fresh_amqp_url, engine, traced_gateway, tmp_path / "services", **env
    ) as running:
        yield running


def test_each_order_is_one_connected_trace_across_services_relays_and_gateway(
    traced: Choreography, receiver: Receiver, order_data: OrderFactory
) -> None:
    ids = {kind: f"ord-trace-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("good", "declined")}
    for kind, order_id in ids.items():
        traced.place(raw_order(order_data, order_id, kind))
    statuses = traced.wait_terminal(list(ids.values()))
    assert statuses == {ids["good"]: "completed", ids["declined"]: "failed"}

    good = order_trace_id(ids["good"])
    receiver.wait_for(
        lambda: (
            {s.service for s in receiver.trace(good)} >= HAPPY
            and any(s.name.startswith("shipping ") for s in receiver.trace(good))
        ),
        what=f"spans of every service in {good}",
    )
    spans = receiver.trace(good)
    assert_one_connected_trace(spans, f"{order_context(ids['good']).span_id:016x}")
    [root] = [span for span in spans if span.name == "order placed"]
    assert root.service == "intake" and root.attributes["segue.order_id"] == ids["good"]
    handlers = {s.service for s in spans if " segue.payments." in s.name and "relay" not in s.name}
    assert handlers >= {"validation", "inventory", "charge", "receipt", "shipping"}
    assert any(" relay segue.payments." in s.name for s in spans), "no relay span"
    charges = {s.service: s for s in spans if s.name == "gateway POST /charges"}
    server, client = charges["gateway"], charges["charge"]
    assert server.service == "gateway" and server.parent_span_id == client.span_id
    assert server.attributes["segue.idempotency_key"] == f"{ids['good']}:charge"

    declined = order_trace_id(ids["declined"])
    receiver.wait_for(
        lambda: any(s.name.endswith("ChargeFailed") for s in receiver.trace(declined)),
        what=f"the declined order's ChargeFailed handling in {declined}",
    )
    assert_one_connected_trace(
        receiver.trace(declined), f"{order_context(ids['declined']).span_id:016x}"
    )
    assert good != declined

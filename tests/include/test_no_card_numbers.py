"""Issue 9: card numbers stay at the gateway, on every path run in process.

Orders go through the pipeline steps, the saga runner and the event-path services (the test
kit's bus, fed by the real ``POST /orders`` app taking a raw card number), a card number is typed
into the token field, and the events are published on a real RabbitMQ queue. Then every table of
the business database (event log, outboxes, saga data, dead letters included), the messages left
on that queue and the logs captured are scanned for test card numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator

import pytest
from kombu import Queue

from include.payments import pipeline
from include.payments.errors import CardDeclined
from include.payments.events import PAYMENT_EVENTS
from include.payments.gateway_client import GatewayClient
from include.payments.order_form import masked
from include.payments.saga import payment_machine
from include.payments.tables import OrderPlacementRow, OrderRow
from include.services import payment_services
from segue.bus.connection import connect
from segue.bus.outbox import OutboxRow
from segue.bus.publisher import Publisher
from segue.bus.topology import EVENTS, declare_exchanges
from segue.eventlog.store import record_events
from segue.events.amqp import AmqpMessage, from_amqp, to_amqp
from segue.events.envelope import Envelope
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from segue.step_runner import StepAbandoned, run_step
from segue.store.engine import session_scope
from segue.testing import InMemoryBus
from tests.conftest import DECLINED_TOKEN, intake_api
from tests.pci_scan import (
    TEST_CARD_NUMBERS,
    assert_no_card_numbers,
    find_card_numbers,
    scan_database,
    scan_queues,
    scan_text,
)


def body_of(order_data, **overrides):
    """A ``POST /orders`` body; with a ``card_number`` it names no token unless told to."""
    body = order_data(**overrides)
    if "card_number" in overrides and "payment_method" not in overrides:
        del body["payment_method"]
    return body


@pytest.fixture
def scan_queue(amqp_url: str) -> Iterator[str]:
    """A queue bound to every event, deleted afterwards."""
    name = f"pci-scan-{uuid.uuid4().hex[:8]}"
    with connect(amqp_url) as connection:
        declare_exchanges(connection)
        queue = Queue(name, exchange=EVENTS, routing_key="#", durable=True)
        queue(connection.channel()).declare()
        yield name
        queue(connection.channel()).delete()


def test_the_scan_finds_card_numbers_with_and_without_spaces() -> None:
    text = "a 4242 4242 4242 4242 b 4000-0000-0000-0002 c 4000000000009995 d pm_card_visa"
    assert find_card_numbers(text) == ["4242", "0002", "9995"]
    assert find_card_numbers("14242424242424242 and 42424242424242420") == []
    assert scan_text("here", "x" + TEST_CARD_NUMBERS[1])[0].where == "here"
    with pytest.raises(AssertionError, match="ending 4242"):
        assert_no_card_numbers(scan_text("here", "4242424242424242"))


def test_no_card_number_is_stored_sent_or_logged_on_any_path(
    deps, order_data, amqp_url, scan_queue, caplog
):
    caplog.set_level(logging.DEBUG)
    engine, gateway = deps.engine, deps.gateway

    # The linear pipeline, step by step: a good order and a declined one.
    order_id = pipeline.validate(deps, order_data())
    for step in (pipeline.charge, pipeline.update_inventory, pipeline.send_receipt):
        step(deps, order_id)
    pipeline.notify_shipping(deps, order_id)
    declined = pipeline.validate(deps, order_data(payment_method=DECLINED_TOKEN))
    with pytest.raises(CardDeclined):
        pipeline.charge(deps, declined)

    # A card number typed into the token field, as the DAG's first task runs it: refused and
    # dead-lettered with the input it got.
    typed = order_data(payment_method="4242 4242 4242 4242")
    with pytest.raises(StepAbandoned) as abandoned:
        run_step(
            lambda: pipeline.validate(deps, typed),
            engine=engine,
            workflow="payment_pipeline",
            step="validate",
            subject=str(typed["order_id"]),
            payload=masked(typed),
            attempt=1,
            max_attempts=4,
        )
    assert "payment_method" in str(abandoned.value)

    # The saga, to success and through compensation (declined).
    saga = SagaRunner(payment_machine(deps), SagaStore(engine), actor="test")
    for data in (order_data(), order_data(payment_method=DECLINED_TOKEN)):
        saga.start(str(data["order_id"]), data)
        assert saga.run(str(data["order_id"])).status in ("succeeded", "compensated")

    # The event path: POST /orders with a raw card number, then every service on the bus.
    intake = intake_api(engine, gateway)
    accepted = intake.post("/orders", json=body_of(order_data, card_number="4242 4242 4242 4242"))
    assert accepted.status_code == 202, accepted.text
    refused = intake.post("/orders", json=order_data(payment_method="4000000000000002"))
    assert refused.status_code == 422 and "payment_method" in refused.text
    assert find_card_numbers(refused.text) == []
    with session_scope(engine) as session:
        rows = list(session.query(OutboxRow))
        placed = [
            from_amqp(row.body, row.headers, row.properties["content_type"], PAYMENT_EVENTS)
            for row in rows
        ]
    assert [envelope.data.order.card_last4 for envelope in placed] == ["4242"]
    bus = InMemoryBus(engine, payment_services(gateway))
    emitted = bus.run(*placed)
    assert "segue.payments.ShippingNotified" in {envelope.type for envelope in emitted}
    everything: list[Envelope] = [*placed, *emitted]
    with session_scope(engine) as session:
        record_events(session, everything)  # the event log
    with connect(amqp_url) as connection:
        publisher = Publisher(connection)
        for envelope in everything:
            publisher.publish_event(envelope)

    findings = scan_database(engine) + scan_queues(amqp_url, [scan_queue])
    findings += scan_text("captured logs", caplog.text)
    assert_no_card_numbers(findings, scanned="the business database, the queue and the logs")
    with connect(amqp_url) as connection:  # the scan left the messages on the queue
        assert connection.channel().queue_declare(scan_queue, passive=True).message_count == len(
            everything
        )

    # The scan would see a number in a text, a JSON and a bytes column, and on the queue.
    with session_scope(engine) as session:
        session.get(OrderRow, order_id).failure_reason = "4000 0000 0000 0002"
        session.get(OrderRow, declined).payload = {"card_number": "4000000000009995"}
        session.add(
            OutboxRow(
                **{
                    **_columns(rows[0]),
                    "id": None,
                    "event_id": "probe",
                    "body": b"4000000000000069",
                }
            )
        )
    with connect(amqp_url) as connection:
        Publisher(connection).publish(to_amqp_with_card(everything[0]))
    found = {str(f) for f in scan_database(engine) + scan_queues(amqp_url, [scan_queue])}
    assert any("orders, column failure_reason" in f and "0002" in f for f in found), found
    assert any("orders, column payload" in f and "9995" in f for f in found), found
    assert any("outbox" in f and "column body" in f and "0069" in f for f in found), found
    assert any(f.startswith("queue ") and "0127" in f for f in found), found


def _columns(row: OutboxRow) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in OutboxRow.__table__.columns}


def to_amqp_with_card(envelope: Envelope) -> AmqpMessage:
    message = to_amqp(envelope)
    return dataclasses.replace(message, body=message.body.replace(b"pm_", b"4000000000000127 "))


def test_an_unreachable_gateway_means_503_and_nothing_stored(clean_db, order_data):
    down = GatewayClient("http://127.0.0.1:9", timeout_seconds=0.5)
    intake = intake_api(clean_db, down)
    for body in (body_of(order_data, card_number="4242424242424242"), order_data()):
        response = intake.post("/orders", json=body)
        assert response.status_code == 503
        assert "gateway is unreachable" in response.json()["detail"]
    with session_scope(clean_db) as session:
        assert session.query(OutboxRow).count() == 0
    assert_no_card_numbers(scan_database(clean_db))


def test_post_orders_tokenizes_a_card_number_or_takes_a_token(deps, order_data):
    intake = intake_api(deps.engine, deps.gateway)
    card = {"card_number": "5555 5555 5555 4444", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    by_card = body_of(order_data, **card)
    assert intake.post("/orders", json=by_card).status_code == 202
    assert intake.post("/orders", json=by_card).status_code == 202  # same card, same token
    by_token = order_data(payment_method="pm_card_chargeDeclined")
    assert intake.post("/orders", json=by_token).status_code == 202
    with session_scope(deps.engine) as session:
        stored = {row.order_id: row.payload for row in session.query(OrderPlacementRow)}
        assert session.query(OutboxRow).count() == 2
    card = stored[by_card["order_id"]]
    assert card["payment_method"].startswith("pm_") and "card_number" not in card
    assert (card["card_last4"], card["card_brand"]) == ("4444", "mastercard")
    assert "cvc" not in card and "exp_month" not in card
    token = stored[by_token["order_id"]]
    assert (token["payment_method"], token["card_last4"]) == ("pm_card_chargeDeclined", "0002")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"card_number": "4242424242424241"}, "card_number"),
        ({"card_number": 4242424242424242}, "card_number"),
        ({"card_number": "4242424242424242", "payment_method": "pm_card_visa"}, "payment_method"),
        ({"card_number": "4242424242424242", "cvc": "12x"}, "card_number"),
        ({"exp_month": 12}, "exp_month"),
        ({"payment_method": "pm_unknown"}, "payment_method"),
        ({"payment_method": "4242-4242-4242-4242"}, "payment_method"),
        ({"card_number": "4242424242424242", "amount": "-1"}, "amount"),
    ],
)
def test_post_orders_refuses_bad_card_input_naming_the_field(deps, order_data, overrides, field):
    intake = intake_api(deps.engine, deps.gateway)
    response = intake.post("/orders", json=body_of(order_data, **overrides))
    assert response.status_code == 422, response.text
    assert f": {field}: " in response.json()["detail"]
    assert find_card_numbers(response.text) == [] and "4242424242424241" not in response.text
    with session_scope(deps.engine) as session:
        assert session.query(OutboxRow).count() == 0

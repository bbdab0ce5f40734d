"""Interoperability with the CloudEvents Python SDK (``cloudevents`` 2.2, its AMQP binding).

Events an SDK producer builds, in binary mode (``cloudEvents_`` prefix, time as AMQP
milliseconds) and structured mode (``application/cloudevents+json``), decode to the same
envelope; Segue's own output reads back with the SDK; a wrong ``specversion`` is refused.
The last test carries SDK messages through a real RabbitMQ queue.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cloudevents.core.bindings import amqp as ce_amqp
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from kombu import Connection, Exchange, Queue

from include.payments.events import PAYMENT_EVENTS, ChargeCompleted
from segue.events.amqp import LEGACY_PREFIX, PREFIX, STRUCTURED, from_amqp, to_amqp
from segue.events.envelope import JSON, Envelope
from segue.events.errors import InvalidEvent

DATA = {
    "order_id": "ord-ce-1",
    "gateway_charge_id": "ch_1",
    "amount": "12.50",
    "currency": "EUR",
}


def sdk_event(**overrides: object) -> CloudEvent:
    attributes = {
        "id": str(uuid.uuid4()),
        "source": "/sdk-producer",
        "type": ChargeCompleted.event_type,
        "specversion": "1.0",
        "time": datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC),
        "subject": "ord-ce-1",
        "datacontenttype": JSON,
        "schemaversion": 1,
        "correlationid": "ord-ce-1",
        **overrides,
    }
    return CloudEvent(attributes=attributes, data=DATA)


def decode(message: ce_amqp.AMQPMessage) -> Envelope:
    """What Segue's consumer does with an AMQP message (headers = application properties)."""
    return from_amqp(
        message.application_data,
        message.application_properties,
        message.properties.get("content-type"),
        PAYMENT_EVENTS,
    )


def assert_same_event(envelope: Envelope, event: CloudEvent) -> None:
    assert envelope.id == event.get_id()
    assert envelope.source == "/sdk-producer"
    assert envelope.type == ChargeCompleted.event_type
    assert envelope.time == datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert envelope.correlationid == "ord-ce-1"
    assert isinstance(envelope.data, ChargeCompleted)
    assert envelope.data.amount == Decimal("12.50")
    assert envelope.dataschema == ChargeCompleted.schema_uri(), "absolute URI filled in"


def test_binary_mode_from_the_sdk_with_the_current_prefix() -> None:
    event = sdk_event()
    message = ce_amqp.to_binary(event, JSONFormat())
    assert any(name.startswith("cloudEvents_") for name in message.application_properties)
    assert isinstance(message.application_properties["cloudEvents_time"], int), "AMQP ms"
    assert_same_event(decode(message), event)


def test_binary_mode_with_the_older_colon_prefix() -> None:
    event = sdk_event()
    message = ce_amqp.to_binary(event, JSONFormat())
    legacy = {
        LEGACY_PREFIX + name.removeprefix("cloudEvents_"): value
        for name, value in message.application_properties.items()
    }
    assert_same_event(
        decode(ce_amqp.AMQPMessage(message.properties, legacy, message.application_data)), event
    )


def test_structured_mode_from_the_sdk() -> None:
    event = sdk_event()
    message = ce_amqp.to_structured(event, JSONFormat())
    assert message.properties["content-type"].startswith(STRUCTURED)
    assert message.application_properties == {}
    assert_same_event(decode(message), event)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_a_specversion_other_than_1_0_is_refused_with_a_reason(mode: str) -> None:
    message = ce_amqp.to_binary(sdk_event(), JSONFormat())
    if mode == "binary":
        headers = {**message.application_properties, PREFIX + "specversion": "9.9"}
        message = ce_amqp.AMQPMessage(message.properties, headers, message.application_data)
    else:
        body = json.loads(ce_amqp.to_structured(sdk_event(), JSONFormat()).application_data)
        body["specversion"] = "9.9"
        message = ce_amqp.AMQPMessage({"content-type": STRUCTURED}, {}, json.dumps(body).encode())
    with pytest.raises(InvalidEvent) as caught:
        decode(message)
    assert caught.value.code == "unsupported_specversion"
    assert "9.9" in caught.value.detail


def test_structured_mode_without_data_or_with_base64_data_is_refused() -> None:
    body = json.loads(ce_amqp.to_structured(sdk_event(), JSONFormat()).application_data)
    for broken, code in (
        ({k: v for k, v in body.items() if k != "data"}, "missing_attribute"),
        (
            {**{k: v for k, v in body.items() if k != "data"}, "data_base64": "e30="},
            "wrong_content_type",
        ),
    ):
        message = ce_amqp.AMQPMessage({"content-type": STRUCTURED}, {}, json.dumps(broken).encode())
        with pytest.raises(InvalidEvent) as caught:
            decode(message)
        assert caught.value.code == code


def test_segue_output_reads_back_with_the_sdk() -> None:
    original = Envelope.create(ChargeCompleted(**DATA), source="charge", subject="ord-ce-1")
    wire = to_amqp(original)
    assert all(name.startswith(PREFIX) for name in wire.headers), "one prefix on output"
    message = ce_amqp.AMQPMessage(
        {"content-type": wire.properties["content_type"]}, wire.headers, wire.body
    )
    event = ce_amqp.from_binary(message, JSONFormat(), CloudEvent)
    assert event.get_id() == original.id
    assert event.get_type() == original.type
    assert event.get_source() == "charge"
    assert event.get_specversion() == "1.0"
    assert event.get_dataschema() == ChargeCompleted.schema_uri()
    assert event.get_extension("correlationid") == "ord-ce-1"
    assert event.get_data()["amount"] == "12.50"


def test_sdk_messages_through_a_real_broker(fresh_amqp_url: str) -> None:
    """Both modes published with Kombu as an SDK producer would, consumed and decoded."""
    exchange = Exchange("ce-conformance", type="direct", durable=False)
    queue = Queue("ce-conformance", exchange, routing_key="ce", durable=False)
    events = [sdk_event(), sdk_event()]
    messages = [
        ce_amqp.to_binary(events[0], JSONFormat()),
        ce_amqp.to_structured(events[1], JSONFormat()),
    ]
    with Connection(fresh_amqp_url) as connection:
        producer = connection.Producer(serializer=None)
        queue(connection.default_channel).declare()
        for message in messages:
            producer.publish(
                message.application_data,
                exchange=exchange,
                routing_key="ce",
                headers=message.application_properties,
                content_type=message.properties["content-type"],
                content_encoding="utf-8",
            )
        received = []
        for _ in messages:
            got = queue(connection.default_channel).get(no_ack=True)
            assert got is not None, "the broker lost a message"
            received.append(from_amqp(got.body, got.headers, got.content_type, PAYMENT_EVENTS))
    for envelope, event in zip(received, events, strict=True):
        assert_same_event(envelope, event)

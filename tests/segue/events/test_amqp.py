"""The AMQP binding of the envelope: a lossless round trip and one test per InvalidEvent code."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from include.payments.events import PAYMENT_EVENTS, ChargeCompleted, OrderPlaced
from include.payments.models import Order
from segue.events.amqp import MAX_BODY_BYTES, PREFIX, AmqpMessage, from_amqp, to_amqp
from segue.events.envelope import JSON, Envelope
from segue.events.errors import REASON_CODES, InvalidEvent

ORDER = Order.model_validate(
    {
        "order_id": "ord-1",
        "customer_email": "ada@example.com",
        "payment_method": "pm_card_visa",
        "card_last4": "4242",
        "card_brand": "visa",
        "amount": "49.99",
        "currency": "USD",
        "items": [{"sku": "SKU-MUG", "quantity": 2}],
        "shipping_address": {
            "name": "Ada",
            "line1": "1 Way",
            "city": "London",
            "postal_code": "SW1",
            "country": "GB",
        },
    }
)


def placed() -> Envelope:
    return Envelope.create(OrderPlaced(order=ORDER), source="test", subject="ord-1")


def decode(message: AmqpMessage, **overrides: Any) -> Envelope:
    values: dict[str, Any] = {
        "body": message.body,
        "headers": dict(message.headers),
        "content_type": message.properties["content_type"],
    }
    values.update(overrides)
    return from_amqp(values["body"], values["headers"], values["content_type"], PAYMENT_EVENTS)


def test_round_trip_keeps_every_attribute_and_the_payload() -> None:
    first = placed()
    charged = Envelope.create(
        ChargeCompleted(
            order_id="ord-1", gateway_charge_id="ch_1", amount=Decimal("49.99"), currency="USD"
        ),
        source="charge",
        subject="ord-1",
        caused_by=first,
    )
    for envelope in (first, charged):
        message = to_amqp(envelope)
        assert message.routing_key == envelope.type
        assert message.properties["message_id"] == envelope.id
        assert message.properties["correlation_id"] == envelope.correlationid
        assert message.properties["delivery_mode"] == 2
        assert decode(message) == envelope
    decoded = decode(to_amqp(charged))
    assert decoded.causationid == first.id
    assert decoded.traceparent.split("-")[1] == first.traceparent.split("-")[1]
    assert decoded.data.amount == Decimal("49.99")  # type: ignore[attr-defined]


def test_headers_are_plain_amqp_table_values() -> None:
    message = to_amqp(placed())
    assert all(isinstance(value, str | int) for value in message.headers.values())
    assert message.headers[PREFIX + "schemaversion"] == OrderPlaced.schema_version == 2


def test_optional_attributes_get_defaults_when_absent() -> None:
    message = to_amqp(placed())
    headers = {
        k: v
        for k, v in message.headers.items()
        if k not in (PREFIX + "correlationid", PREFIX + "traceparent", PREFIX + "dataschema")
    }
    envelope = decode(message, headers=headers)
    assert envelope.correlationid == envelope.subject
    assert envelope.dataschema == OrderPlaced.schema_uri()
    assert envelope.traceparent.startswith("00-")


def test_content_type_parameters_are_accepted() -> None:
    message = to_amqp(placed())
    assert (
        decode(message, content_type="Application/JSON; charset=utf-8").id
        == message.headers[PREFIX + "id"]
    )


def expect(code: str, message: AmqpMessage, **overrides: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode(message, **overrides)
    assert caught.value.code == code, caught.value
    return caught.value


def with_header(message: AmqpMessage, name: str, value: Any) -> dict[str, Any]:
    headers = dict(message.headers)
    if value is None:
        headers.pop(PREFIX + name)
    else:
        headers[PREFIX + name] = value
    return headers


def test_unsupported_specversion() -> None:
    """Before, an event with specversion 9.9 was processed; only CloudEvents 1.0 is accepted."""
    message = to_amqp(placed())
    error = expect(
        "unsupported_specversion", message, headers=with_header(message, "specversion", "9.9")
    )
    assert "'9.9'" in error.detail


def test_oversized_body() -> None:
    message = to_amqp(placed())
    error = expect("oversized_body", message, body=b" " * (MAX_BODY_BYTES + 1))
    assert str(MAX_BODY_BYTES) in error.detail


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/octet-stream"])
def test_wrong_content_type(content_type: str | None) -> None:
    expect("wrong_content_type", to_amqp(placed()), content_type=content_type)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""])
def test_bad_json(body: bytes) -> None:
    expect("bad_json", to_amqp(placed()), body=body)


@pytest.mark.parametrize("name", ["id", "source", "type", "time", "subject", "schemaversion"])
def test_missing_attribute(name: str) -> None:
    message = to_amqp(placed())
    error = expect("missing_attribute", message, headers=with_header(message, name, None))
    assert PREFIX + name in error.detail
    expect("missing_attribute", message, headers=with_header(message, name, ""))


def test_missing_attribute_when_there_are_no_headers() -> None:
    expect("missing_attribute", to_amqp(placed()), headers=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [("time", "yesterday"), ("traceparent", "not-a-trace"), ("source", "s" * 201)],
)
def test_invalid_attribute(name: str, value: Any) -> None:
    message = to_amqp(placed())
    error = expect("invalid_attribute", message, headers=with_header(message, name, value))
    assert name in error.detail


def test_unknown_type() -> None:
    message = to_amqp(placed())
    headers = with_header(message, "type", "segue.payments.Nope")
    assert "segue.payments.Nope" in expect("unknown_type", message, headers=headers).detail


@pytest.mark.parametrize("version", [1, 3, "two"])
def test_unsupported_version(version: Any) -> None:
    """v1 of OrderPlaced carried the card number: it is no longer read."""
    message = to_amqp(placed())
    expect("unsupported_version", message, headers=with_header(message, "schemaversion", version))


@pytest.mark.parametrize(
    "data",
    [
        {"order": {"order_id": "ord-1"}},
        {},
        [],
    ],
)
def test_invalid_payload(data: Any) -> None:
    expect("invalid_payload", to_amqp(placed()), body=json.dumps(data).encode())


def test_a_field_added_by_a_newer_producer_is_ignored() -> None:
    """Tolerant reader: adding an optional field does not break older consumers."""
    data = {"order": json.loads(ORDER.model_dump_json()), "added_later": 1}
    envelope = decode(to_amqp(placed()), body=json.dumps(data).encode())
    assert envelope.data == OrderPlaced(order=ORDER)


def test_every_reason_code_has_a_test() -> None:
    tested = {
        name.removeprefix("test_")
        for name in globals()
        if name.startswith("test_") and name.removeprefix("test_") in REASON_CODES
    }
    assert tested == set(REASON_CODES)
    assert JSON == "application/json"

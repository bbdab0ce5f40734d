"""Malformed requests get a 4xx with the gateway's error shape, and create nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .helpers import CARD_OK, TOKEN_OK, assert_error, charge_body, charge_count, new_key

GOOD = json.dumps(charge_body()).encode()


def _send(
    client: httpx.Client, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    all_headers = {"Idempotency-Key": new_key(), "Content-Type": "application/json"}
    all_headers.update(headers or {})
    return client.post("/charges", content=content, headers=all_headers)


def _body(**overrides: Any) -> bytes:
    body = {"amount": "49.99", "currency": "USD", "payment_method": TOKEN_OK, **overrides}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def test_missing_idempotency_key(client: httpx.Client) -> None:
    response = client.post("/charges", json=charge_body())
    assert_error(response, 400, "invalid_request", field="Idempotency-Key")
    assert charge_count(client) == 0


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_idempotency_key_length(client: httpx.Client, key: str) -> None:
    response = _send(client, GOOD, {"Idempotency-Key": key})
    assert_error(response, 400, "invalid_request", field="Idempotency-Key")


def test_idempotency_key_of_255_chars_is_fine(client: httpx.Client) -> None:
    assert _send(client, GOOD, {"Idempotency-Key": "k" * 255}).status_code == 201


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(b"{", None, id="malformed-json"),
        pytest.param(b"", None, id="empty-body"),
        pytest.param(b"[1, 2]", None, id="json-array"),
        pytest.param(_body(amount="-5.00"), "amount", id="negative-amount"),
        pytest.param(_body(amount="0"), "amount", id="zero-amount"),
        pytest.param(_body(amount="1.999"), "amount", id="three-decimals"),
        pytest.param(_body(amount=49.99), "amount", id="float-amount"),
        pytest.param(_body(amount="abc"), "amount", id="text-amount"),
        pytest.param(_body(amount=...), "amount", id="missing-amount"),
        pytest.param(_body(currency="usd"), "currency", id="lowercase-currency"),
        pytest.param(_body(currency=840), "currency", id="numeric-currency"),
        pytest.param(_body(payment_method=""), "payment_method", id="empty-token"),
        pytest.param(_body(payment_method=42), "payment_method", id="int-token"),
        pytest.param(_body(card_number=CARD_OK), "card_number", id="card-number-field"),
        pytest.param(_body(reference="r" * 201), "reference", id="long-reference"),
        pytest.param(_body(cvc="123"), "cvc", id="unknown-field"),
    ],
)
def test_malformed_charge(client: httpx.Client, content: bytes, field: str | None) -> None:
    assert_error(_send(client, content), 400, "invalid_request", field=field)
    assert charge_count(client) == 0


def test_oversized_body_with_content_length(client: httpx.Client) -> None:
    content = _body(reference="x" * (70 * 1024))
    assert_error(_send(client, content), 413, "invalid_request")
    assert charge_count(client) == 0


def test_oversized_chunked_body(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"amount": "1.00", "reference": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = client.post("/charges", content=chunks(), headers={"Idempotency-Key": new_key()})
    assert "content-length" not in response.request.headers  # really chunked
    assert_error(response, 413, "invalid_request")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "1.00"}, "charge_id"),
        ({"charge_id": "ch_1", "amount": "-1"}, "amount"),
        ({"charge_id": "ch_1", "amount": "1.001"}, "amount"),
    ],
)
def test_malformed_refund(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = client.post("/refunds", json=body, headers={"Idempotency-Key": new_key()})
    assert_error(response, 400, "invalid_request", field=field)


def test_refund_without_key(client: httpx.Client) -> None:
    response = client.post("/refunds", json={"charge_id": "ch_1", "amount": "1.00"})
    assert_error(response, 400, "invalid_request", field="Idempotency-Key")


def test_unknown_route_and_wrong_method_keep_the_shape(client: httpx.Client) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.delete("/charges"), 405, "method_not_allowed")

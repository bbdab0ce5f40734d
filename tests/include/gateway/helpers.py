"""Request builders and assertions shared by the gateway tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

CARD_OK = "4242424242424242"
TOKEN_OK = "pm_card_visa"


def new_key() -> str:
    return f"test-{uuid.uuid4().hex}"


def charge_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": "49.99",
        "currency": "USD",
        "payment_method": TOKEN_OK,
        "reference": f"order-{uuid.uuid4().hex[:8]}",
    }
    body.update(overrides)
    return body


def post_charge(client: httpx.Client, key: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/charges", json=body, headers={"Idempotency-Key": key})


def tokenize(client: httpx.Client, card_number: str, **card: Any) -> str:
    """The token of ``card_number`` (``POST /payment_methods``)."""
    response = client.post("/payment_methods", json={"card_number": card_number, **card})
    assert response.status_code == 201, response.text
    token: str = response.json()["id"]
    return token


def post_refund(client: httpx.Client, key: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/refunds", json=body, headers={"Idempotency-Key": key})


def create_charge(client: httpx.Client, amount: str = "49.99") -> dict[str, Any]:
    response = post_charge(client, new_key(), charge_body(amount=amount))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_error(
    response: httpx.Response, status: int, code: str, **expected: Any
) -> dict[str, Any]:
    """Check the gateway's single error shape and return the ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    for name, value in expected.items():
        assert error[name] == value, error
    return error


def charge_count(client: httpx.Client) -> int:
    charges: dict[str, int] = client.get("/stats").json()["charges"]
    return charges["succeeded"] + charges["declined"]

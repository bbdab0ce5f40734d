"""Sandbox mode (``Gateway-Mode: sandbox``): decided as a live request, recorded apart."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from include.gateway.admin import GatewayAdmin
from include.payments.errors import CardDeclined, GatewayUnavailable
from include.payments.gateway_client import GatewayClient

from .helpers import assert_error, charge_body, new_key, post_charge

SANDBOX = {"Gateway-Mode": "sandbox"}


def sandbox_charge(client: httpx.Client, key: str, body: dict[str, object]) -> httpx.Response:
    return client.post("/charges", json=body, headers={"Idempotency-Key": key, **SANDBOX})


def test_a_sandbox_charge_is_decided_like_a_live_one_and_recorded_apart(
    client: httpx.Client,
) -> None:
    body = charge_body(reference="order-sbx")
    charged = sandbox_charge(client, new_key(), body)
    declined = sandbox_charge(
        client, new_key(), charge_body(payment_method="pm_card_chargeDeclinedInsufficientFunds")
    )
    assert charged.status_code == 201, charged.text
    assert charged.json()["id"].startswith("ch_sbx_")
    assert_error(declined, 402, "card_declined", decline_code="insufficient_funds")
    live = client.get("/stats").json()
    assert live["charges"] == {"succeeded": 0, "declined": 0} and live["requests"] == 0
    assert client.get("/charges", params={"reference": "order-sbx"}).json() == []
    assert client.get(f"/charges/{charged.json()['id']}").status_code == 404
    sandbox = client.get("/stats", headers=SANDBOX).json()
    assert sandbox["charges"] == {"succeeded": 1, "declined": 1} and sandbox["requests"] == 2
    listed = client.get("/charges", params={"reference": "order-sbx"}, headers=SANDBOX).json()
    assert [charge["id"] for charge in listed] == [charged.json()["id"]]


def test_keys_are_per_ledger_and_replays_hold_in_the_sandbox(client: httpx.Client) -> None:
    key, body = new_key(), charge_body()
    first = sandbox_charge(client, key, body)
    again = sandbox_charge(client, key, body)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    live = post_charge(client, key, body)  # the same key live: a charge of its own
    assert live.status_code == 201 and live.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in live.headers


def test_faults_apply_in_the_sandbox_without_consuming_the_live_ones(
    client: httpx.Client, gateway_admin: GatewayAdmin
) -> None:
    gateway_admin.set_faults(fail_next=1)
    assert_error(sandbox_charge(client, new_key(), charge_body()), 503, "gateway_unavailable")
    assert sandbox_charge(client, new_key(), charge_body()).status_code == 201
    assert_error(post_charge(client, new_key(), charge_body()), 503, "gateway_unavailable")
    assert client.get("/stats", headers=SANDBOX).json()["injected_failures"] == 1
    assert client.get("/stats").json()["injected_failures"] == 1


def test_refunds_in_the_sandbox_see_only_sandbox_charges(client: httpx.Client) -> None:
    live = post_charge(client, new_key(), charge_body(amount="10.00")).json()
    refund = {"charge_id": live["id"], "amount": "10.00"}
    sandboxed = client.post("/refunds", json=refund, headers={"Idempotency-Key": "k", **SANDBOX})
    assert_error(sandboxed, 404, "charge_not_found")
    assert client.get("/stats").json()["refunds"] == 0


def test_an_unknown_mode_is_refused_naming_the_header(client: httpx.Client) -> None:
    response = client.post(
        "/charges",
        json=charge_body(),
        headers={"Idempotency-Key": new_key(), "Gateway-Mode": "pretend"},
    )
    assert_error(response, 400, "invalid_request", field="Gateway-Mode")


def test_the_client_in_sandbox_mode(gateway_url: str) -> None:
    client = GatewayClient(gateway_url)
    sandbox = client.sandbox()
    try:
        assert sandbox.sandbox() is sandbox and client.sandbox() is sandbox
        charge = sandbox.charge(
            idempotency_key="o-1:charge",
            amount=Decimal("12.50"),
            currency="EUR",
            payment_method="pm_card_visa",
            reference="o-1",
        )
        assert charge.id.startswith("ch_sbx_") and charge.amount == Decimal("12.50")
        assert [c.id for c in sandbox.list_charges(reference="o-1")] == [charge.id]
        assert client.list_charges(reference="o-1") == []
        assert sandbox.get_charge(charge.id) is not None and client.get_charge(charge.id) is None
        refund = sandbox.refund(
            idempotency_key="o-1:refund", charge_id=charge.id, amount=Decimal("12.50")
        )
        assert refund.id.startswith("re_sbx_")
        with pytest.raises(CardDeclined):
            sandbox.charge(
                idempotency_key="o-2:charge",
                amount=Decimal("1.00"),
                currency="EUR",
                payment_method="pm_card_chargeDeclined",
                reference="o-2",
            )
        assert httpx.get(f"{gateway_url}/stats").json()["charges"]["succeeded"] == 0
    finally:
        client.close()
    with pytest.raises(GatewayUnavailable):
        GatewayClient("http://127.0.0.1:9").sandbox().list_charges(reference="x")

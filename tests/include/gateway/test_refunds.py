"""Refunds against the real gateway process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from .helpers import (
    assert_error,
    charge_body,
    create_charge,
    new_key,
    post_charge,
    post_refund,
)


def test_refund_succeeds_and_is_recorded_on_the_charge(client: httpx.Client) -> None:
    charge = create_charge(client, "49.99")
    response = post_refund(
        client, new_key(), {"charge_id": charge["id"], "amount": "20.00", "reason": "damaged"}
    )
    assert response.status_code == 201, response.text
    refund = response.json()
    assert refund["id"].startswith("re_")
    assert (refund["charge_id"], refund["amount"], refund["status"]) == (
        charge["id"],
        "20.00",
        "succeeded",
    )
    assert client.get(f"/refunds/{refund['id']}").json() == refund
    assert client.get(f"/charges/{charge['id']}").json()["amount_refunded"] == "20.00"
    assert client.get("/stats").json()["refunds"] == 1


def test_refund_replay_refunds_once(client: httpx.Client) -> None:
    charge = create_charge(client)
    key, body = new_key(), {"charge_id": charge["id"], "amount": "49.99"}
    first, second = post_refund(client, key, body), post_refund(client, key, body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert client.get("/stats").json()["refunds"] == 1


def test_refund_key_reused_with_other_body_or_for_a_charge(client: httpx.Client) -> None:
    charge = create_charge(client)
    key = new_key()
    first = post_refund(client, key, {"charge_id": charge["id"], "amount": "1.00"})
    assert first.status_code == 201
    other = post_refund(client, key, {"charge_id": charge["id"], "amount": "2.00"})
    assert_error(other, 409, "idempotency_key_reused")
    assert_error(post_charge(client, key, charge_body()), 409, "idempotency_key_reused")
    assert client.get("/stats").json()["refunds"] == 1


def test_partial_refunds_then_over_refund(client: httpx.Client) -> None:
    charge = create_charge(client, "30.00")
    for amount in ("10.00", "15.00"):
        body = {"charge_id": charge["id"], "amount": amount}
        assert post_refund(client, new_key(), body).status_code == 201
    over = post_refund(client, new_key(), {"charge_id": charge["id"], "amount": "5.01"})
    assert_error(over, 422, "refund_exceeds_charge")
    exact = post_refund(client, new_key(), {"charge_id": charge["id"], "amount": "5.00"})
    assert exact.status_code == 201
    assert client.get(f"/charges/{charge['id']}").json()["amount_refunded"] == "30.00"
    assert client.get("/stats").json()["refunds"] == 3


def test_concurrent_full_refunds_only_one_wins(gateway_url: str, client: httpx.Client) -> None:
    charge = create_charge(client, "12.00")

    def send(_: int) -> int:
        with httpx.Client(base_url=gateway_url, timeout=10) as http:
            body = {"charge_id": charge["id"], "amount": "12.00"}
            return post_refund(http, new_key(), body).status_code

    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(send, range(10)))
    assert statuses == [201] + [422] * 9
    assert client.get("/stats").json()["refunds"] == 1


def test_refund_of_unknown_charge(client: httpx.Client) -> None:
    response = post_refund(client, new_key(), {"charge_id": "ch_nope", "amount": "1.00"})
    assert_error(response, 404, "charge_not_found")
    assert client.get("/stats").json()["refunds"] == 0


def test_refund_of_declined_charge(client: httpx.Client) -> None:
    declined = post_charge(client, new_key(), charge_body(payment_method="pm_card_chargeDeclined"))
    assert declined.status_code == 402
    body = {"charge_id": declined.json()["id"], "amount": "1.00"}
    assert_error(post_refund(client, new_key(), body), 422, "charge_not_refundable")
    assert client.get("/stats").json()["refunds"] == 0

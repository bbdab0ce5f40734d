"""Charges against the real gateway process: success, idempotency, concurrency, test cards."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from include.gateway.admin import stats as gateway_stats
from include.gateway.cards import DECLINING_CARDS
from include.gateway.tokens import FIXED_TOKENS

from .helpers import (
    CARD_OK,
    assert_error,
    charge_body,
    charge_count,
    new_key,
    post_charge,
    tokenize,
)


def test_successful_charge(client: httpx.Client) -> None:
    response = post_charge(client, new_key(), charge_body(amount="49.99", reference="order-123"))
    assert response.status_code == 201, response.text
    charge = response.json()
    assert charge["id"].startswith("ch_") and len(charge["id"]) > 10
    assert charge["status"] == "succeeded"
    assert charge["amount"] == "49.99"
    assert (charge["currency"], charge["reference"]) == ("USD", "order-123")
    assert datetime.fromisoformat(charge["created_at"]).tzinfo is not None
    assert "Idempotent-Replayed" not in response.headers
    assert client.get(f"/charges/{charge['id']}").json()["id"] == charge["id"]
    assert client.get("/stats").json()["charges"] == {"succeeded": 1, "declined": 0}


def test_amount_is_normalised_to_cents(client: httpx.Client) -> None:
    response = post_charge(client, new_key(), charge_body(amount="50"))
    assert response.json()["amount"] == "50.00"


def test_replay_returns_the_same_charge_and_charges_once(client: httpx.Client) -> None:
    key, body = new_key(), charge_body()
    first = post_charge(client, key, body)
    second = post_charge(client, key, body)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    stats = client.get("/stats").json()
    assert stats["charges"]["succeeded"] == 1
    assert (stats["requests"], stats["replays"]) == (2, 1)


def test_same_key_different_body_is_a_conflict(client: httpx.Client) -> None:
    key = new_key()
    assert post_charge(client, key, charge_body(amount="10.00")).status_code == 201
    assert_error(
        post_charge(client, key, charge_body(amount="10.01")), 409, "idempotency_key_reused"
    )
    assert charge_count(client) == 1


def test_concurrent_requests_with_one_key_make_one_charge(gateway_url: str, gateway_admin) -> None:
    # A little latency makes the 20 requests overlap inside the gateway.
    gateway_admin.set_faults(latency={"distribution": "fixed", "mean_ms": 50})
    key, body, barrier = new_key(), charge_body(), threading.Barrier(20)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=gateway_url, timeout=10) as http:
            barrier.wait()
            return post_charge(http, key, body)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(send, range(20)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    stats = gateway_stats(gateway_url)
    assert stats["charges"]["succeeded"] == 1
    assert stats["replays"] == 19


def test_concurrent_requests_with_distinct_keys_all_charge(gateway_url: str) -> None:
    def send(_: int) -> str:
        with httpx.Client(base_url=gateway_url, timeout=10) as http:
            response = post_charge(http, new_key(), charge_body())
            assert response.status_code == 201
            charge_id: str = response.json()["id"]
            return charge_id

    with ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(send, range(40)))
    assert len(set(ids)) == 40
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 40


@pytest.mark.parametrize(("card", "decline_code"), sorted(DECLINING_CARDS.items()))
@pytest.mark.parametrize("named_by", ["tokenized", "fixed test token"])
def test_test_cards_decline_and_replay(
    client: httpx.Client, card: str, decline_code: str, named_by: str
) -> None:
    """The card behind the token decides, whether it was tokenized or named by a test token."""
    if named_by == "tokenized":
        token = tokenize(client, card)
    else:
        [token] = [name for name, number in FIXED_TOKENS.items() if number == card]
    key, body = new_key(), charge_body(payment_method=token)
    first = post_charge(client, key, body)
    error = assert_error(first, 402, "card_declined", decline_code=decline_code)
    assert first.json()["status"] == "declined"
    assert first.json()["id"].startswith("ch_")
    assert error["decline_code"] == decline_code
    replay = post_charge(client, key, body)
    assert replay.status_code == 402
    assert replay.json() == first.json()
    stats = client.get("/stats").json()
    assert stats["charges"] == {"succeeded": 0, "declined": 1}
    stored = client.get(f"/charges/{first.json()['id']}").json()
    assert (stored["status"], stored["decline_code"]) == ("declined", decline_code)


@pytest.mark.parametrize("card", ["5555555555554444", "378282246310005", "4000056655665556"])
def test_other_luhn_valid_cards_succeed(client: httpx.Client, card: str) -> None:
    token = tokenize(client, card)
    response = post_charge(client, new_key(), charge_body(payment_method=token))
    assert response.status_code == 201
    assert response.json()["card_last4"] == card[-4:]
    assert response.json()["payment_method"] == token
    assert card not in response.text


def test_an_unknown_token_is_a_bad_request(client: httpx.Client) -> None:
    for token in ["pm_nope", "pm_" + "A" * 43, "4242424242424242"]:
        response = post_charge(client, new_key(), charge_body(payment_method=token))
        assert_error(response, 400, "payment_method_not_found", field="payment_method")
    assert charge_count(client) == 0


def test_a_card_number_is_no_longer_accepted_by_charges(client: httpx.Client) -> None:
    body = charge_body(card_number=CARD_OK)
    del body["payment_method"]
    response = post_charge(client, new_key(), body)
    assert_error(response, 400, "invalid_request")
    assert charge_count(client) == 0


def test_lookup_by_reference_and_unknown_ids(client: httpx.Client) -> None:
    mine = [post_charge(client, new_key(), charge_body(reference="order-7")) for _ in range(2)]
    post_charge(client, new_key(), charge_body(reference="order-8"))
    listed = client.get("/charges", params={"reference": "order-7"}).json()
    assert [c["id"] for c in listed] == [r.json()["id"] for r in mine]
    assert client.get("/charges", params={"reference": "nope"}).json() == []
    assert len(client.get("/charges").json()) == 3
    assert_error(client.get("/charges/ch_unknown"), 404, "charge_not_found")
    assert_error(client.get("/refunds/re_unknown"), 404, "refund_not_found")


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_openapi_documents_the_hand_parsed_bodies(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    charge = spec["paths"]["/charges"]["post"]
    assert charge["parameters"][0]["name"] == "Idempotency-Key"
    schema = charge["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["amount"]["type"] == "string"
    assert (
        "charge_id"
        in spec["paths"]["/refunds"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["properties"]
    )

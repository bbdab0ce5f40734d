"""Tokenization: ``POST /payment_methods`` turns a card number into a token charges can name."""

from __future__ import annotations

import httpx
import pytest

from include.gateway.cards import DECLINING_CARDS, SUCCESS_CARD
from include.gateway.tokens import FIXED_TOKENS, Tokenizer, card_brand
from tools.gateway import start_gateway

from .helpers import assert_error, charge_body, new_key, post_charge, tokenize

OTHER_CARD = "5555555555554444"


def test_tokenizing_a_card_answers_token_last4_and_brand_only(client: httpx.Client) -> None:
    response = client.post(
        "/payment_methods",
        json={"card_number": OTHER_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("pm_") and OTHER_CARD not in body["id"]
    assert (body["last4"], body["brand"]) == ("4444", "mastercard")
    assert OTHER_CARD not in response.text and "123" not in response.text
    assert client.get(f"/payment_methods/{body['id']}").json() == body
    assert client.get("/stats").json()["payment_methods"] == 1


def test_the_same_card_gets_the_same_token_and_another_card_another(client: httpx.Client) -> None:
    first, again = tokenize(client, OTHER_CARD), tokenize(client, OTHER_CARD)
    assert first == again
    assert tokenize(client, "378282246310005") != first


@pytest.mark.parametrize("card", [SUCCESS_CARD, *DECLINING_CARDS])
def test_every_test_card_tokenizes_to_its_fixed_test_token(client: httpx.Client, card: str) -> None:
    [expected] = [token for token, number in FIXED_TOKENS.items() if number == card]
    assert tokenize(client, card) == expected
    shown = client.get(f"/payment_methods/{expected}").json()
    assert (shown["last4"], shown["brand"]) == (card[-4:], "visa")


def test_stripe_style_test_tokens() -> None:
    assert FIXED_TOKENS["pm_card_visa"] == "4242424242424242"
    assert FIXED_TOKENS["pm_card_chargeDeclined"] == "4000000000000002"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"card_number": "4242424242424241"}, "card_number"),
        ({"card_number": "4242"}, "card_number"),
        ({"card_number": 4242424242424242}, "card_number"),
        ({"card_number": OTHER_CARD, "exp_month": 13}, "exp_month"),
        ({"card_number": OTHER_CARD, "cvc": "12a"}, "cvc"),
        ({"card_number": OTHER_CARD, "name": "Ada"}, "name"),
        ({}, "card_number"),
    ],
)
def test_a_bad_card_is_refused_naming_the_field_not_the_number(
    client: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = client.post("/payment_methods", json=body)
    error = assert_error(response, 400, "invalid_request", field=field)
    assert "4242424242424241" not in error["message"] and OTHER_CARD not in error["message"]


@pytest.mark.parametrize("token", ["pm_nope", "pm_card_mastercard", "pm_" + "A" * 43, "ch_1"])
def test_unknown_tokens_are_404(client: httpx.Client, token: str) -> None:
    assert_error(client.get(f"/payment_methods/{token}"), 404, "payment_method_not_found")


def test_a_tampered_token_is_unknown(client: httpx.Client) -> None:
    token = tokenize(client, OTHER_CARD)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert_error(client.get(f"/payment_methods/{flipped}"), 404, "payment_method_not_found")
    response = post_charge(client, new_key(), charge_body(payment_method=flipped))
    assert_error(response, 400, "payment_method_not_found", field="payment_method")


def test_tokens_are_derived_from_the_secret_not_kept_in_memory() -> None:
    token = Tokenizer("secret-a").tokenize(OTHER_CARD).id
    assert Tokenizer("secret-a").resolve(token).card_number == OTHER_CARD  # type: ignore[union-attr]
    assert Tokenizer("secret-b").resolve(token) is None
    assert OTHER_CARD not in repr(Tokenizer("secret-a").resolve(token))


def test_tokens_survive_a_gateway_restart_with_the_same_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEGUE_GATEWAY_TOKEN_SECRET", "restart-test-secret")
    with start_gateway(failure_rate=0) as first, httpx.Client(base_url=first.url) as http:
        token = tokenize(http, OTHER_CARD)
    with start_gateway(failure_rate=0) as second, httpx.Client(base_url=second.url) as http:
        assert http.get(f"/payment_methods/{token}").json()["last4"] == "4444"
        response = post_charge(http, new_key(), charge_body(payment_method=token))
        assert response.status_code == 201 and response.json()["card_last4"] == "4444"
    monkeypatch.setenv("SEGUE_GATEWAY_TOKEN_SECRET", "another-secret")
    with start_gateway(failure_rate=0) as third, httpx.Client(base_url=third.url) as http:
        assert http.get(f"/payment_methods/{token}").status_code == 404


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3056930009020004", "unknown"),
    ],
)
def test_card_brand(number: str, brand: str) -> None:
    assert card_brand(number) == brand

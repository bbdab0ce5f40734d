"""Unit tests of the test-card table and the Luhn check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import include.gateway.cards as cards
from include.gateway.cards import DECLINE_MESSAGES, DECLINING_CARDS, SUCCESS_CARD, luhn_valid

README = Path(cards.__file__).with_name("README.md")
DOCUMENTED = [SUCCESS_CARD, *DECLINING_CARDS]


@pytest.mark.parametrize("number", DOCUMENTED)
def test_documented_cards_are_luhn_valid(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize(
    "number",
    ["4242424242424241", "4000000000000003", "1234567812345678", "79927398710"],
)
def test_luhn_rejects_bad_checksums(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize("number", ["79927398713", "5555555555554444", "378282246310005"])
def test_luhn_accepts_other_valid_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["", "4242 4242 4242 4242", "42424242424242a2", "-4242"])
def test_luhn_rejects_non_digits(number: str) -> None:
    assert not luhn_valid(number)


def test_every_decline_code_has_a_message() -> None:
    assert set(DECLINING_CARDS.values()) == set(DECLINE_MESSAGES)
    assert cards.decline_code_for(SUCCESS_CARD) is None
    assert cards.decline_code_for("4000000000009995") == "insufficient_funds"


@pytest.mark.parametrize("source", ["cards.py docstring", "README.md"])
def test_card_table_is_documented(source: str) -> None:
    text = (cards.__doc__ or "") if source == "cards.py docstring" else README.read_text()
    for number, code in DECLINING_CARDS.items():
        assert re.search(rf"{number}.*{code}", text), f"{number}/{code} missing from {source}"
    assert SUCCESS_CARD in text

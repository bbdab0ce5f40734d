"""Test card numbers of the simulated gateway and the Luhn check.

The gateway decides a charge's outcome from the card behind its payment method token alone
(``tokens.FIXED_TOKENS`` names these cards directly), like a processor's sandbox:

| Card number        | Outcome                                  |
|--------------------|------------------------------------------|
| 4242424242424242   | succeeds                                 |
| 4000000000000002   | declined, `generic_decline`              |
| 4000000000009995   | declined, `insufficient_funds`           |
| 4000000000000069   | declined, `expired_card`                 |
| 4000000000000127   | declined, `incorrect_cvc`                |
| any other Luhn-valid number (12-19 digits) | succeeds         |
| a Luhn-invalid number | 400 `invalid_request`, field `card_number` (when tokenized) |
"""

from __future__ import annotations

from typing import Final

SUCCESS_CARD: Final = "4242424242424242"

#: decline_code -> human-readable message, as a processor would return them.
DECLINE_MESSAGES: Final[dict[str, str]] = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
}

#: card number -> decline_code for the documented declining test cards.
DECLINING_CARDS: Final[dict[str, str]] = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}


def luhn_valid(number: str) -> bool:
    """True when ``number`` (digits only) passes the Luhn checksum every real card number has."""
    if not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def decline_code_for(number: str) -> str | None:
    """The decline code a test card triggers, or None when the charge should succeed."""
    return DECLINING_CARDS.get(number)

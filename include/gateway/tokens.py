"""Payment-method tokens: the card number stays inside the gateway.

``POST /payment_methods`` exchanges a card number for a token ``pm_…``; charges name the token.
Tokens are derived, not stored: ``pm_`` + base64url(AES-SIV(card number)) under a key derived
from the gateway's ``token_secret``. AES-SIV is deterministic, so the same card always gets the
same token (placing an order twice stays idempotent), and a token decodes without any memory,
so tokens outlive a gateway restart (the in-memory ledger does not). A token that was not made
under this secret fails authentication and is unknown.

Fixed test tokens, like a processor sandbox's, name the test cards directly (``FIXED_TOKENS``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, ConfigDict, Field

from include.gateway.cards import DECLINING_CARDS, SUCCESS_CARD, luhn_valid

PREFIX: Final = "pm_"

#: test token -> the test card behind it (one per card in ``cards``).
FIXED_TOKENS: Final[dict[str, str]] = {
    "pm_card_visa": SUCCESS_CARD,
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
}
assert set(FIXED_TOKENS.values()) == {SUCCESS_CARD, *DECLINING_CARDS}


class PaymentMethod(BaseModel):
    """What a token stands for, and what the gateway shows of it (never the number)."""

    model_config = ConfigDict(frozen=True)

    id: str
    card_number: str = Field(repr=False)  # never in a repr, a log line or a body

    @property
    def last4(self) -> str:
        return self.card_number[-4:]

    @property
    def brand(self) -> str:
        return card_brand(self.card_number)

    def to_json(self) -> dict[str, str]:
        """The public view: ``{"id", "object", "last4", "brand"}``."""
        return {"id": self.id, "object": "payment_method", "last4": self.last4, "brand": self.brand}


def card_brand(number: str) -> str:
    """The card network by its leading digits (``unknown`` when none matches)."""
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(number[:2] or 0) <= 55 or 2221 <= int(number[:4] or 0) <= 2720:
        return "mastercard"
    if number.startswith(("6011", "65")) or 644 <= int(number[:3] or 0) <= 649:
        return "discover"
    return "unknown"


class Tokenizer:
    """Makes and reads tokens under one secret (the gateway's ``token_secret``)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("token_secret must not be empty")
        self._siv = AESSIV(hashlib.sha512(secret.encode()).digest())  # AES-256-SIV key

    def tokenize(self, card_number: str) -> PaymentMethod:
        """The token of a (digits-only, Luhn-valid) card number; the same card, the same token."""
        if not (card_number.isdigit() and 12 <= len(card_number) <= 19 and luhn_valid(card_number)):
            raise ValueError("card_number must be 12-19 digits and pass the Luhn check")
        for token, number in FIXED_TOKENS.items():
            if number == card_number:
                return PaymentMethod(id=token, card_number=number)
        sealed = self._siv.encrypt(card_number.encode(), None)
        token = PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        return PaymentMethod(id=token, card_number=card_number)

    def resolve(self, token: str) -> PaymentMethod | None:
        """The payment method behind ``token``, or None when no card is behind it."""
        fixed = FIXED_TOKENS.get(token)
        if fixed is not None:
            return PaymentMethod(id=token, card_number=fixed)
        if not token.startswith(PREFIX) or len(token) > 200:
            return None
        encoded = token.removeprefix(PREFIX)
        try:
            sealed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            number = self._siv.decrypt(sealed, None).decode()
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            return None
        return PaymentMethod(id=token, card_number=number)

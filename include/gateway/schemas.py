"""Request bodies of ``POST /charges``, ``POST /refunds`` and ``POST /payment_methods``, validated
strictly.

Amounts travel as JSON strings ("49.99"), never as floats; unknown fields are rejected so a
client's typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from include.gateway.cards import luhn_valid

CENT = Decimal("0.01")
_AMOUNT = re.compile(r"-?\d{1,12}(?:\.\d+)?")


def _parse_amount(value: Any) -> Decimal:
    """A positive decimal string with at most 2 decimal places, as an exact Decimal."""
    if not isinstance(value, str):
        raise ValueError('amount must be a JSON string of a decimal, e.g. "49.99"')
    if not _AMOUNT.fullmatch(value):
        raise ValueError(f'amount must look like "49.99", got {value[:40]!r}')
    if "." in value and len(value.split(".", 1)[1]) > 2:
        raise ValueError("amount must have at most 2 decimal places")
    amount = Decimal(value)
    if amount <= 0:
        raise ValueError("amount must be greater than 0")
    return amount.quantize(CENT)


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_amount),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,2})?$", "examples": ["49.99"]}),
]


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The gateway's single error shape: ``{"error": {"code", "message", ...extra}}``."""
    return {"error": {"code": code, "message": message, **extra}}


def format_amount(amount: Decimal) -> str:
    """The wire form of an amount: a string with exactly two decimal places."""
    return str(amount.quantize(CENT))


class ChargeRequest(BaseModel):
    """Body of ``POST /charges``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Amount
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: str = Field(min_length=1, max_length=200, description="A token, pm_...")
    reference: str | None = Field(default=None, max_length=200)


class PaymentMethodRequest(BaseModel):
    """Body of ``POST /payment_methods``: a card to tokenize (expiry and CVC checked, not kept)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    card_number: str = Field(pattern=r"^\d{12,19}$", repr=False)
    exp_month: int | None = Field(default=None, ge=1, le=12)
    exp_year: int | None = Field(default=None, ge=2000, le=2100)
    cvc: str | None = Field(default=None, pattern=r"^\d{3,4}$", repr=False)

    @field_validator("card_number")
    @classmethod
    def _luhn(cls, value: str) -> str:
        if not luhn_valid(value):
            raise ValueError("card_number fails the Luhn check")
        return value


class RefundRequest(BaseModel):
    """Body of ``POST /refunds``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    charge_id: str = Field(min_length=1, max_length=100)
    amount: Amount
    reason: str | None = Field(default=None, max_length=500)

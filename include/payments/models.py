"""Value models of the payment domain (pydantic v2, frozen, Decimal money).

``OrderInput`` is what a DAG run conf or a saga's data names (the card as its gateway token);
``Order`` adds the card's last four digits and brand and is what is stored and sent in OrderPlaced.
No model has a card number field: card numbers stay at the gateway.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
OrderId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LineItem(Frozen):
    """One product line of an order."""

    sku: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{0,39}$", description="Catalog SKU.")
    quantity: int = Field(ge=1, le=1000)


class ShippingAddress(Frozen):
    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")


PaymentMethodId = Annotated[
    str,
    Field(
        pattern=r"^pm_[A-Za-z0-9_-]{1,120}$",
        description="A payment method token from the gateway (pm_...), never a card number.",
    ),
]


class OrderInput(Frozen):
    """An order as a form, DAG run conf or saga input names it: the card only as its token.

    The gateway tells the card's last four digits and brand (``payment_methods.order_from_input``).
    """

    order_id: OrderId
    customer_email: EmailStr
    payment_method: PaymentMethodId
    amount: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[LineItem] = Field(min_length=1, max_length=100)
    shipping_address: ShippingAddress

    @field_validator("items")
    @classmethod
    def _unique_skus(cls, items: list[LineItem]) -> list[LineItem]:
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear once; add up the quantities instead")
        return items


class Order(OrderInput):
    """A customer's order, as placed: the card is its gateway token plus what may be shown of it
    (last four digits, brand). The card number itself stays at the gateway (PCI DSS)."""

    card_last4: str = Field(pattern=r"^[0-9]{4}$")
    card_brand: str = Field(pattern=r"^[a-z_]{1,20}$")

    def public_payload(self) -> dict[str, object]:
        """The order as JSON-safe data (for logs and dead letters; it holds no card number)."""
        return self.model_dump(mode="json")


class ChargeRecord(Frozen):
    """A successful charge as recorded in the business store."""

    order_id: str
    gateway_charge_id: str
    amount: Decimal
    currency: str
    idempotency_key: str


class RefundRecord(Frozen):
    order_id: str
    gateway_refund_id: str
    gateway_charge_id: str
    amount: Decimal
    idempotency_key: str


def looks_like_card_number(value: object) -> bool:
    """True for a string of 12-19 digits, spaces and dashes allowed: a card number typed where a
    token belongs (it must be refused without being stored or logged)."""
    if not isinstance(value, str):
        return False
    digits = value.replace(" ", "").replace("-", "")
    return digits.isdigit() and 12 <= len(digits) <= 19

"""Value models of the payment domain (pydantic v2, frozen, Decimal money).

``Order`` is the input every path starts from: DAG run conf, a saga's data, an OrderPlaced event.
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


class Order(Frozen):
    """A customer's order, as placed.

    ``card_number`` stands in for a card token from a vault: the gateway simulator's test
    numbers decide success or decline.
    """

    order_id: OrderId
    customer_email: EmailStr
    card_number: str = Field(pattern=r"^[0-9]{12,19}$")
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

    def public_payload(self) -> dict[str, object]:
        """The order as JSON-safe data with the card number masked (for logs and dead letters)."""
        data = self.model_dump(mode="json")
        data["card_number"] = mask_card(self.card_number)
        return data


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


def mask_card(card_number: str) -> str:
    """Keep the last four digits only."""
    return "*" * max(len(card_number) - 4, 0) + card_number[-4:]

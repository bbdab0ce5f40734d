"""The order form: each input field's default and JSON-schema, for trigger forms (Airflow Params).

Types only here; the business rules live in ``models.Order`` and fail the first step with the
field's name, so one place decides what a valid order is.
"""

from __future__ import annotations

from typing import Any

from include.payments.models import Order
from include.payments.payment_methods import redacted

ORDER_FORM: dict[str, dict[str, Any]] = {
    "order_id": {
        "default": None,
        "type": ["null", "string"],
        "title": "Order id",
        "description": "Leave empty to derive a stable id from the run id.",
    },
    "customer_email": {
        "default": "ada@example.com",
        "type": "string",
        "title": "Customer e-mail",
        "description": "Where the receipt goes.",
    },
    "payment_method": {
        "default": "pm_card_visa",
        "type": "string",
        "title": "Payment method (token)",
        "description": "A gateway token, never a card number. Test tokens: pm_card_visa succeeds; "
        "pm_card_chargeDeclined is declined, pm_card_chargeDeclinedInsufficientFunds has "
        "insufficient funds, pm_card_chargeDeclinedExpiredCard is expired, "
        "pm_card_chargeDeclinedIncorrectCvc has a wrong CVC. Tokenize another card with "
        "POST /payment_methods at the gateway (see include/gateway/README.md).",
    },
    "amount": {
        "default": "49.99",
        "type": "string",
        "title": "Amount",
        "description": "Decimal string with at most two decimals, e.g. 49.99.",
    },
    "currency": {"default": "USD", "type": "string", "title": "Currency (ISO 4217)"},
    "items": {
        "default": [{"sku": "SKU-MUG", "quantity": 2}],
        "type": "array",
        "items": {"type": "object"},  # objects make the form show a JSON editor
        "title": "Line items",
        "description": "SKUs: SKU-MUG, SKU-TEE, SKU-CAP, SKU-BOOK.",
    },
    "shipping_address": {
        "default": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
        "type": "object",
        "title": "Shipping address",
    },
}


def masked(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of raw order input safe to store (a dead letter): a card number typed into any
    field it could be in is reduced to its last four digits."""
    return redacted(data)


def conf_for(order: Order) -> dict[str, Any]:
    """The DAG run conf that makes a payment DAG process ``order``: one value per form field.

    The JSON form of the order's input (amount as a decimal string; the card as its token, the
    last four digits and brand are the gateway's to tell again), keyed exactly as ORDER_FORM,
    so the run's params are the order and ``order_from_params`` finds its id.

    :param order: a validated order.
    """
    conf = {k: v for k, v in order.model_dump(mode="json").items() if k in ORDER_FORM}
    if set(conf) != set(ORDER_FORM):  # the form and the model drifted apart: fail loudly
        raise ValueError(f"order fields {sorted(conf)} differ from the form {sorted(ORDER_FORM)}")
    return conf

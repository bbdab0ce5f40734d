"""From an order's input to an ``Order``: the card is named by its gateway token only.

A card number never gets past here. Input that carries one (a ``card_number`` field, or a
number typed where the ``payment_method`` token belongs) is refused with InvalidOrder naming the
field and without the number in the message, so it is neither stored nor logged.
:func:`tokenize` is for front doors that take card numbers (``POST /orders``): the number goes
to the gateway and only its token comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from include.payments.errors import GatewayRejected, InvalidOrder
from include.payments.gateway_client import GatewayClient, GatewayPaymentMethod
from include.payments.models import Order, OrderInput, looks_like_card_number
from include.payments.shadow import SHADOW_PREFIX, is_shadow

TEST_TOKENS_HINT = (
    "use a payment method token such as pm_card_visa (see include/gateway/README.md), "
    "or tokenize the card at the gateway (POST /payment_methods)"
)


def refuse_card_number(data: Mapping[str, Any]) -> None:
    """Raise InvalidOrder when ``data`` holds a card number (the message never repeats it).

    :param data: raw order input (a form, a DAG run conf, a saga's data)
    """
    if "card_number" in data:
        message = f"card numbers are not accepted here; it was not stored: {TEST_TOKENS_HINT}"
        raise InvalidOrder("card_number", message)
    if looks_like_card_number(data.get("payment_method")):
        raise InvalidOrder(
            "payment_method",
            f"a card number was entered where a payment method token belongs; it was not "
            f"stored: {TEST_TOKENS_HINT}",
        )


def redacted(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of raw order input safe to store or log: any card number is reduced to its last four
    digits (for a dead-letter record of input that was refused).

    :param data: raw order input
    """
    safe = dict(data)
    for field in ("card_number", "payment_method"):
        value = safe.get(field)
        if looks_like_card_number(value):
            digits = "".join(ch for ch in str(value) if ch.isdigit())
            safe[field] = "*" * (len(digits) - 4) + digits[-4:]
    safe.pop("cvc", None)
    return safe


def parse_input(data: Mapping[str, Any] | OrderInput) -> OrderInput:
    """Validate raw input into an OrderInput; InvalidOrder names the first bad field.

    :param data: raw order input, or an OrderInput (returned as it is)
    """
    if isinstance(data, OrderInput):
        return data
    refuse_card_number(data)
    try:
        order = OrderInput.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "order"
        raise InvalidOrder(field, error["msg"]) from None  # pydantic's text repeats the input
    if is_shadow(order.order_id):
        raise InvalidOrder("order_id", f"ids starting with {SHADOW_PREFIX!r} are shadow orders'")
    return order


def with_method(order: OrderInput, method: GatewayPaymentMethod) -> Order:
    """The Order of ``order`` paid with ``method`` (its token, last four digits and brand).

    :param order: the validated input
    :param method: the gateway's view of the token
    """
    fields = order.model_dump(exclude={"card_last4", "card_brand"})
    fields.update(payment_method=method.id, card_last4=method.last4, card_brand=method.brand)
    try:
        return Order.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "order"
        raise InvalidOrder(field, f"the gateway's payment method: {error['msg']}") from None


def order_from_input(gateway: GatewayClient, data: Mapping[str, Any] | OrderInput) -> Order:
    """The Order of raw input: its token is looked up at the gateway for last four and brand.

    Raises InvalidOrder (a field is bad, a card number was given, the token is unknown) or
    GatewayUnavailable (worth retrying).

    :param gateway: the gateway client
    :param data: raw order input or an OrderInput; an Order is returned as it is
    """
    if isinstance(data, Order):
        return data
    order = parse_input(data)
    method = gateway.payment_method(order.payment_method)
    if method is None:
        raise InvalidOrder(
            "payment_method", f"the gateway knows no payment method {order.payment_method!r}"
        )
    return with_method(order, method)


def tokenize(gateway: GatewayClient, card_number: str, **card: Any) -> GatewayPaymentMethod:
    """Exchange a card number for its token at the gateway (``POST /payment_methods``).

    Raises GatewayUnavailable, or InvalidOrder("card_number") when the gateway refuses the card.

    :param gateway: the gateway client
    :param card_number: the number, spaces and dashes allowed
    :param card: ``exp_month``, ``exp_year``, ``cvc`` when given (checked by the gateway, not kept)
    """
    digits = card_number.replace(" ", "").replace("-", "")
    try:
        return gateway.create_payment_method(card_number=digits, **card)
    except GatewayRejected as exc:
        raise InvalidOrder("card_number", f"the gateway refused the card: {exc}") from None

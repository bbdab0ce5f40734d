"""Typed failures of the payment steps.

``retryable`` tells every orchestrator (DAG retries, saga policy, service redelivery) whether
trying again can help: a declined card cannot, a gateway outage can.
"""

from __future__ import annotations


class PaymentError(Exception):
    """Base of every failure a payment step reports on purpose."""

    retryable: bool = False


class BusinessFailure(PaymentError):
    """The order cannot proceed; retrying will not change that."""

    retryable = False


class InvalidOrder(BusinessFailure):
    """The order's input is invalid; ``field`` names the culprit (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid order: {field}: {message}")
        self.field = field
        self.message = message


class CardDeclined(BusinessFailure):
    """The gateway declined the card (a final answer, not an outage)."""

    def __init__(self, decline_code: str, message: str = "") -> None:
        super().__init__(f"card declined: {decline_code}" + (f" ({message})" if message else ""))
        self.decline_code = decline_code


class OutOfStock(BusinessFailure):
    """Not enough stock to reserve a line item."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(f"out of stock: {sku} (requested {requested}, available {available})")
        self.sku = sku


class OrderNotFound(BusinessFailure):
    """A step ran for an order that was never validated and recorded."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order not found: {order_id}")
        self.order_id = order_id


class GatewayRejected(BusinessFailure):
    """The gateway refused the request itself (4xx other than a decline): a bug, not an outage."""


class TransientFailure(PaymentError):
    """A temporary problem (gateway down, timeout); the same call may succeed later."""

    retryable = True


class GatewayUnavailable(TransientFailure):
    """The gateway did not answer in time, or answered 5xx."""

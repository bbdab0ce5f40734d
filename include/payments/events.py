"""The payment events of the choreography, one payload model per type and schema version.

Flow: OrderPlaced -> validation -> OrderValidated | OrderInvalidated. On OrderValidated the
inventory service reserves stock and the charge service charges the card, in parallel.
ChargeCompleted lets inventory commit the stock (InventoryUpdated), which the receipt and
shipping services both react to. Compensation: ChargeFailed releases a reservation
(InventoryReleased); InventoryReservationFailed after a charge refunds it (RefundIssued).
ChargeRequested is the command the Airflow bridge sends to the charge service alone.

Orders routed to an Airflow path: the intake records OrderRouted instead of OrderPlaced (in the
placement's transaction), the ``airflow-handover`` service triggers that order's one DAG run
and announces DagRunTriggered with the run's id (so the run shows in the order's timeline).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from include.payments.models import LineItem, Order
from include.payments.routing import DagPath
from segue.events.payload import EventPayload
from segue.events.registry import EventRegistry

PREFIX = "segue.payments."

OrderRef = str


class OrderPlaced(EventPayload):
    """An order was accepted. v2: the order names its card by gateway token, last four digits and
    brand; v1 carried the card number and is no longer read (drain its queues before upgrading)."""

    event_type = PREFIX + "OrderPlaced"
    schema_version = 2
    order: Order


class OrderRouted(EventPayload):
    """An order accepted for an Airflow path: hand it over to ``dag_id`` as run ``dag_run_id``."""

    event_type = PREFIX + "OrderRouted"
    order: Order
    path: DagPath
    dag_id: str
    dag_run_id: str


class DagRunTriggered(EventPayload):
    """The order's DAG run exists in Airflow (created now, or found from an earlier hand-over)."""

    event_type = PREFIX + "DagRunTriggered"
    order_id: OrderRef
    path: DagPath
    dag_id: str
    dag_run_id: str
    already_existed: bool = Field(
        default=False, description="True when Airflow answered 409: an earlier try created it."
    )


class OrderValidated(EventPayload):
    event_type = PREFIX + "OrderValidated"
    order_id: OrderRef
    amount: Decimal
    currency: str
    items: list[LineItem]


class OrderInvalidated(EventPayload):
    event_type = PREFIX + "OrderInvalidated"
    order_id: OrderRef
    field: str
    reason: str


class ChargeRequested(EventPayload):
    """A command: charge this (already validated) order and answer with a Charge* event."""

    event_type = PREFIX + "ChargeRequested"
    order_id: OrderRef


# Who asked for a charge: the choreography (OrderValidated) or an orchestrator (ChargeRequested).
ChargeTrigger = Literal["order_validated", "charge_requested"]


class ChargeCompleted(EventPayload):
    event_type = PREFIX + "ChargeCompleted"
    order_id: OrderRef
    gateway_charge_id: str
    amount: Decimal
    currency: str
    requested_by: ChargeTrigger = "order_validated"


class ChargeFailed(EventPayload):
    event_type = PREFIX + "ChargeFailed"
    order_id: OrderRef
    code: str = Field(description="Why: a decline code, 'gateway_rejected' or 'order_failed'.")
    reason: str
    requested_by: ChargeTrigger = "order_validated"


class InventoryReserved(EventPayload):
    event_type = PREFIX + "InventoryReserved"
    order_id: OrderRef
    lines: list[LineItem]


class InventoryReservationFailed(EventPayload):
    event_type = PREFIX + "InventoryReservationFailed"
    order_id: OrderRef
    sku: str
    requested: int
    available: int


class InventoryUpdated(EventPayload):
    event_type = PREFIX + "InventoryUpdated"
    order_id: OrderRef
    lines: list[LineItem]


class InventoryReleased(EventPayload):
    event_type = PREFIX + "InventoryReleased"
    order_id: OrderRef
    released_lines: int


class RefundIssued(EventPayload):
    event_type = PREFIX + "RefundIssued"
    order_id: OrderRef
    gateway_refund_id: str
    amount: Decimal
    reason: str


class ReceiptSent(EventPayload):
    event_type = PREFIX + "ReceiptSent"
    order_id: OrderRef
    email: str


class ShippingNotified(EventPayload):
    event_type = PREFIX + "ShippingNotified"
    order_id: OrderRef
    country: str


PAYMENT_EVENTS = EventRegistry(
    [
        OrderPlaced,
        OrderRouted,
        DagRunTriggered,
        OrderValidated,
        OrderInvalidated,
        ChargeRequested,
        ChargeCompleted,
        ChargeFailed,
        InventoryReserved,
        InventoryReservationFailed,
        InventoryUpdated,
        InventoryReleased,
        RefundIssued,
        ReceiptSent,
        ShippingNotified,
    ]
)

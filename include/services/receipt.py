"""The receipt service: InventoryUpdated -> the receipt is recorded once -> ReceiptSent."""

from __future__ import annotations

import logging

from include.payments import steps
from include.payments.events import PAYMENT_EVENTS, InventoryUpdated, ReceiptSent
from segue.bus.handlers import HandlerContext, ServiceSpec

NAME = "receipt"
logger = logging.getLogger(__name__)


def on_inventory_updated(ctx: HandlerContext, event: InventoryUpdated) -> None:
    order = steps.load_order(ctx.session, event.order_id)
    steps.send_receipt(ctx.session, event.order_id, order=order)
    logger.debug("receipt sent for order %s", event.order_id, extra=ctx.envelope.log_context())
    ctx.emit(ReceiptSent(order_id=event.order_id, email=order.customer_email))


def receipt_service() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        handlers={InventoryUpdated.event_type: on_inventory_updated},
        registry=PAYMENT_EVENTS,
    )


def main() -> None:
    from include.services import run as run_service  # declares every consumer's queue

    run_service(receipt_service())


if __name__ == "__main__":
    main()

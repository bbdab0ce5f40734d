"""The shipping service: InventoryUpdated -> one shipping notice recorded -> ShippingNotified.

Recording the notice completes the order (``steps.notify_shipping``).
"""

from __future__ import annotations

import logging

from include.payments import steps
from include.payments.events import PAYMENT_EVENTS, InventoryUpdated, ShippingNotified
from segue.bus.handlers import HandlerContext, ServiceSpec

NAME = "shipping"
logger = logging.getLogger(__name__)


def on_inventory_updated(ctx: HandlerContext, event: InventoryUpdated) -> None:
    notice = steps.notify_shipping(ctx.session, event.order_id)
    country = str(notice["address"]["country"])
    logger.debug(
        "shipping notified for order %s (%s)",
        event.order_id,
        country,
        extra=ctx.envelope.log_context(),
    )
    ctx.emit(ShippingNotified(order_id=event.order_id, country=country))


def shipping_service() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        handlers={InventoryUpdated.event_type: on_inventory_updated},
        registry=PAYMENT_EVENTS,
    )


def main() -> None:
    from include.services import run as run_service  # declares every consumer's queue

    run_service(shipping_service())


if __name__ == "__main__":
    main()

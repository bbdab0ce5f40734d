"""The validation service: OrderPlaced -> OrderValidated, or OrderInvalidated with the culprit.

A valid order is recorded as ``validated``. An invalid one (unknown SKU) is recorded as
``failed`` with the reason, unless its id already belongs to another order, which is left alone.
"""

from __future__ import annotations

import logging

from include.payments import steps
from include.payments.errors import InvalidOrder
from include.payments.events import PAYMENT_EVENTS, OrderInvalidated, OrderPlaced, OrderValidated
from segue.bus.handlers import HandlerContext, ServiceSpec

NAME = "validation"
logger = logging.getLogger(__name__)


def on_order_placed(ctx: HandlerContext, event: OrderPlaced) -> None:
    order = event.order
    try:
        steps.validate_order(ctx.session, order)
    except InvalidOrder as exc:
        recorded = steps.record_failed_order(ctx.session, order, str(exc))
        logger.info(
            "order %s invalid (%s: %s)%s",
            order.order_id,
            exc.field,
            exc.message,
            "" if recorded else "; order row left as it was",
            extra=ctx.envelope.log_context(),
        )
        ctx.emit(OrderInvalidated(order_id=order.order_id, field=exc.field, reason=exc.message))
        return
    logger.debug("order %s validated", order.order_id, extra=ctx.envelope.log_context())
    ctx.emit(
        OrderValidated(
            order_id=order.order_id,
            amount=order.amount,
            currency=order.currency,
            items=order.items,
        )
    )


def validation_service() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        handlers={OrderPlaced.event_type: on_order_placed},
        registry=PAYMENT_EVENTS,
    )


def main() -> None:
    from include.services import run as run_service  # declares every consumer's queue

    run_service(validation_service())


if __name__ == "__main__":
    main()

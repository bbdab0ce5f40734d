"""The inventory service: reserve on OrderValidated, commit on ChargeCompleted, release on failure.

Every handler first locks the order row (``steps.lock_order``: status and order in one read),
the same lock the charge service takes, so the two services' decisions about one order are
serialized:

- OrderValidated: a failed order (declined card first) reserves nothing; otherwise the stock is
  reserved (InventoryReserved), or the order is failed (InventoryReservationFailed), which makes
  the charge service refund a charge that already happened.
- ChargeCompleted: commits the reservation (InventoryUpdated). Arriving before the reservation it
  raises NotYet, and the runtime retries it later. A failed order commits nothing: the charge
  is being refunded.
- ChargeFailed: fails the order (if the charge service has not) and releases what was held
  (InventoryReleased, possibly 0 lines), so a later OrderValidated reserves nothing.

Charge events answering a ChargeRequested (``requested_by="charge_requested"``) belong to an
orchestrator (DAG or saga) that updates the inventory itself; they are ignored here.
"""

from __future__ import annotations

import logging

from include.payments import steps
from include.payments.errors import OrderNotFound, OutOfStock
from include.payments.events import (
    PAYMENT_EVENTS,
    ChargeCompleted,
    ChargeFailed,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    InventoryUpdated,
    OrderValidated,
)
from include.payments.models import LineItem
from segue.bus.handlers import HandlerContext, NotYet, ServiceSpec

NAME = "inventory"
HELD = ("reserved", "committed")
logger = logging.getLogger(__name__)


def on_order_validated(ctx: HandlerContext, event: OrderValidated) -> None:
    session, order_id = ctx.session, event.order_id
    locked = steps.lock_order(session, order_id)
    if locked is None:  # validation records the order before anyone hears of it
        raise OrderNotFound(order_id)
    status, order = locked
    if status == "failed":
        logger.info("order %s already failed: nothing reserved", order_id, extra=_log(ctx))
        return
    try:
        # A short line is found before anything is written: no savepoint needed for the
        # failure below to commit alone.
        lines = steps.reserve_inventory(session, order_id, order=order)
    except OutOfStock as exc:
        requested = next((item.quantity for item in event.items if item.sku == exc.sku), 0)
        available = steps.stock_available(session, exc.sku)
        steps.fail_order(session, order_id, str(exc))
        logger.info("order %s: %s", order_id, exc, extra=_log(ctx))
        ctx.emit(
            InventoryReservationFailed(
                order_id=order_id, sku=exc.sku, requested=requested, available=available
            )
        )
        return
    logger.debug("stock reserved for order %s", order_id, extra=_log(ctx))
    ctx.emit(InventoryReserved(order_id=order_id, lines=[LineItem(**line) for line in lines]))


def on_charge_completed(ctx: HandlerContext, event: ChargeCompleted) -> None:
    if event.requested_by != "order_validated":
        return
    session, order_id = ctx.session, event.order_id
    locked = steps.lock_order(session, order_id)
    if locked is None:
        raise OrderNotFound(order_id)
    status, order = locked
    if status == "failed":
        logger.info("order %s failed: charge not committed", order_id, extra=_log(ctx))
        return
    if steps.reservation_lines(session, order_id, HELD) == 0:
        raise NotYet(f"order {order_id} is charged but its stock is not reserved yet")
    steps.commit_inventory(session, order_id)
    logger.debug("stock committed for order %s", order_id, extra=_log(ctx))
    ctx.emit(InventoryUpdated(order_id=order_id, lines=order.items))


def on_charge_failed(ctx: HandlerContext, event: ChargeFailed) -> None:
    if event.requested_by != "order_validated":
        return
    session, order_id = ctx.session, event.order_id
    _locked_status(ctx, order_id)
    steps.fail_order(session, order_id, f"charge failed: {event.code}: {event.reason}")
    released_now = steps.release_reservation(session, order_id)
    # Counted from the rows, not from this call: handling the event again says the same.
    released = steps.reservation_lines(session, order_id, ("released",))
    logger.info(
        "order %s: %d stock lines released (%d now)",
        order_id,
        released,
        released_now,
        extra=_log(ctx),
    )
    ctx.emit(InventoryReleased(order_id=order_id, released_lines=released))


def inventory_service() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        handlers={
            OrderValidated.event_type: on_order_validated,
            ChargeCompleted.event_type: on_charge_completed,
            ChargeFailed.event_type: on_charge_failed,
        },
        registry=PAYMENT_EVENTS,
    )


def _locked_status(ctx: HandlerContext, order_id: str) -> str:
    status = steps.locked_status(ctx.session, order_id)
    if status is None:  # validation records the order before anyone hears of it
        raise OrderNotFound(order_id)
    return status


def _log(ctx: HandlerContext) -> dict[str, str]:
    return ctx.envelope.log_context()


def main() -> None:
    from include.services import run as run_service  # declares every consumer's queue

    run_service(inventory_service())


if __name__ == "__main__":
    main()

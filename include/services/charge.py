"""The charge service: charges on OrderValidated or ChargeRequested, refunds on out-of-stock.

OrderValidated (the choreography): under the order's row lock, which inventory takes too, an
order already failed (out of stock came first) is not charged and nothing is emitted:
InventoryReservationFailed already closed it. Otherwise the card is charged once
(ChargeCompleted); a decline or a rejected request fails the order (ChargeFailed), and inventory
releases what it held. A charge that is already recorded is announced again as it was.

ChargeRequested (a command of the Airflow bridge): the orchestrator owns the order, so the
answer is only a typed reply (ChargeCompleted / ChargeFailed with ``requested_by =
"charge_requested"``); the order row is not failed here, and inventory ignores these replies.

InventoryReservationFailed: refunds the charge if there is one (RefundIssued), else emits
nothing. No charge can be in flight then: inventory failed the order under the row lock that
the charge holds from its status check to its commit, so either the charge was committed
before (and is refunded) or the order was already failed when the charge looked (no charge).

GatewayUnavailable (an outage or timeout) is not caught: the transaction rolls back and the
runtime redelivers later; the idempotency key makes the retry return the same charge.
"""

from __future__ import annotations

import logging
from functools import partial

from include.payments import steps
from include.payments.errors import CardDeclined, GatewayRejected, OrderNotFound
from include.payments.events import (
    PAYMENT_EVENTS,
    ChargeCompleted,
    ChargeFailed,
    ChargeRequested,
    ChargeTrigger,
    InventoryReservationFailed,
    OrderValidated,
    RefundIssued,
)
from include.payments.gateway_client import GatewayClient
from include.payments.models import ChargeRecord
from segue.bus.handlers import HandlerContext, ServiceSpec

NAME = "charge"
logger = logging.getLogger(__name__)


def on_order_validated(gateway: GatewayClient, ctx: HandlerContext, event: OrderValidated) -> None:
    session, order_id = ctx.session, event.order_id
    status = steps.locked_status(session, order_id)
    if status is None:  # validation records the order before anyone hears of it
        raise OrderNotFound(order_id)
    charge = steps.recorded_charge(session, order_id)
    if charge is None and status == "failed":
        logger.info("order %s already failed: not charged", order_id, extra=_log(ctx))
        return
    _charge(gateway, ctx, order_id, "order_validated", fail_order=True)


def on_charge_requested(
    gateway: GatewayClient, ctx: HandlerContext, event: ChargeRequested
) -> None:
    order_id = event.order_id
    if steps.locked_status(ctx.session, order_id) is None:
        logger.info("charge requested for unknown order %s", order_id, extra=_log(ctx))
        ctx.emit(
            ChargeFailed(
                order_id=order_id,
                code="order_not_found",
                reason=f"order {order_id} is not recorded",
                requested_by="charge_requested",
            )
        )
        return
    _charge(gateway, ctx, order_id, "charge_requested", fail_order=False)


def on_inventory_reservation_failed(
    gateway: GatewayClient, ctx: HandlerContext, event: InventoryReservationFailed
) -> None:
    order_id = event.order_id
    steps.locked_status(ctx.session, order_id)
    reason = f"out of stock: {event.sku} (requested {event.requested}, available {event.available})"
    refund = steps.refund_charge(ctx.session, gateway, order_id, reason=reason)
    if refund is None:
        logger.info("order %s was not charged: nothing to refund", order_id, extra=_log(ctx))
        return
    logger.info("charge of order %s refunded", order_id, extra=_log(ctx))
    ctx.emit(
        RefundIssued(
            order_id=order_id,
            gateway_refund_id=refund.gateway_refund_id,
            amount=refund.amount,
            reason=reason,
        )
    )


def _charge(
    gateway: GatewayClient,
    ctx: HandlerContext,
    order_id: str,
    requested_by: ChargeTrigger,
    *,
    fail_order: bool,
) -> None:
    """Charge once and announce the outcome; business failures fail the order if asked."""
    try:
        charge: ChargeRecord = steps.charge_card(ctx.session, gateway, order_id)
    except (CardDeclined, GatewayRejected) as exc:
        code = exc.decline_code if isinstance(exc, CardDeclined) else "gateway_rejected"
        if fail_order:
            steps.fail_order(ctx.session, order_id, str(exc))
        logger.info("charge of order %s failed: %s", order_id, exc, extra=_log(ctx))
        ctx.emit(
            ChargeFailed(order_id=order_id, code=code, reason=str(exc), requested_by=requested_by)
        )
        return
    logger.info("order %s charged", order_id, extra=_log(ctx))
    ctx.emit(
        ChargeCompleted(
            order_id=order_id,
            gateway_charge_id=charge.gateway_charge_id,
            amount=charge.amount,
            currency=charge.currency,
            requested_by=requested_by,
        )
    )


def charge_service(gateway: GatewayClient) -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        handlers={
            OrderValidated.event_type: partial(on_order_validated, gateway),
            ChargeRequested.event_type: partial(on_charge_requested, gateway),
            InventoryReservationFailed.event_type: partial(
                on_inventory_reservation_failed, gateway
            ),
        },
        registry=PAYMENT_EVENTS,
    )


def _log(ctx: HandlerContext) -> dict[str, str]:
    return ctx.envelope.log_context()


def main() -> None:
    from include.services import run as run_service  # declares every consumer's queue
    from segue.settings import get_settings

    settings = get_settings()
    gateway = GatewayClient(settings.gateway_url, timeout_seconds=settings.gateway_timeout_seconds)
    try:
        run_service(charge_service(gateway))
    finally:
        gateway.close()


if __name__ == "__main__":
    main()

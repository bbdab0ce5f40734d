"""The charge service: charges on OrderValidated or ChargeRequested, refunds on out-of-stock.

OrderValidated (the choreography): under the order's row lock, which inventory takes too, an
order already failed (out of stock came first) is not charged. If no charge of it is recorded,
the gateway is asked whether an earlier attempt charged anyway (see below) and what it finds is
refunded and announced (RefundIssued, again on every redelivery). Otherwise the card is charged
once (ChargeCompleted); a decline or a rejected request fails the order (ChargeFailed), and
inventory releases what it held. A charge that is already recorded is announced again as it was
(a failed order's is InventoryReservationFailed's to refund).

ChargeRequested (a command of the Airflow bridge): the orchestrator owns the order, so the
answer is only a typed reply (ChargeCompleted / ChargeFailed with ``requested_by =
"charge_requested"``); the order row is not failed here, and inventory ignores these replies.
A command for an order that has already failed (its orchestrator gave up waiting) is refused
with ChargeFailed ``order_failed`` and nothing is charged.

InventoryReservationFailed: refunds the recorded charge if there is one (RefundIssued). With
none recorded it reconciles with the gateway: inventory failed the order under the row lock that
the charge holds from its status check to its commit, so no charge of ours is being recorded,
but an attempt that rolled back may still have charged at the gateway.

GatewayUnavailable (an outage or timeout) is not caught: the transaction rolls back and the
runtime redelivers later; the idempotency key makes the retry return the same charge. If the
gateway charged and only its answer was lost, and the order fails before the retry, the charge
exists only at the gateway: ``money.settle_failed_order`` finds it by the order's reference,
records it and refunds it once, on either of the two events above.
"""

from __future__ import annotations

import logging
from functools import partial

from include.payments import money, steps
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
from include.payments.models import ChargeRecord, RefundRecord
from segue.bus.handlers import HandlerContext, ServiceSpec

NAME = "charge"
logger = logging.getLogger(__name__)


def on_order_validated(gateway: GatewayClient, ctx: HandlerContext, event: OrderValidated) -> None:
    session, order_id = ctx.session, event.order_id
    status = steps.locked_status(session, order_id)
    if status is None:  # validation records the order before anyone hears of it
        raise OrderNotFound(order_id)
    if status == "failed":
        # A recorded charge is InventoryReservationFailed's to refund: announced again below.
        settled = money.settle_failed_order(session, gateway, order_id, recorded="leave")
        if settled.charge is None or settled.orphans:
            logger.info("order %s already failed: not charged", order_id, extra=_log(ctx))
            _announce(ctx, list(settled.orphans), [refund.reason for refund in settled.orphans])
            return
    _charge(gateway, ctx, order_id, "order_validated", fail_order=True)


def on_charge_requested(
    gateway: GatewayClient, ctx: HandlerContext, event: ChargeRequested
) -> None:
    order_id = event.order_id
    status = steps.locked_status(ctx.session, order_id)
    if status is None:
        _refuse(ctx, order_id, "order_not_found", f"order {order_id} is not recorded")
    elif status == "failed":  # the orchestrator gave up (e.g. its reply timed out): no charge
        _refuse(ctx, order_id, "order_failed", f"order {order_id} has failed: not charged")
    else:
        _charge(gateway, ctx, order_id, "charge_requested", fail_order=False)


def _refuse(ctx: HandlerContext, order_id: str, code: str, reason: str) -> None:
    logger.info("charge of order %s refused: %s", order_id, reason, extra=_log(ctx))
    ctx.emit(
        ChargeFailed(order_id=order_id, code=code, reason=reason, requested_by="charge_requested")
    )


def on_inventory_reservation_failed(
    gateway: GatewayClient, ctx: HandlerContext, event: InventoryReservationFailed
) -> None:
    order_id = event.order_id
    reason = f"out of stock: {event.sku} (requested {event.requested}, available {event.available})"
    # Refunds recorded earlier (this event redelivered, or OrderValidated's redelivery
    # reconciled first) are announced again with this event's reason.
    settled = money.settle_failed_order(
        ctx.session, gateway, order_id, recorded="refund", refund_reason=reason
    )
    refunds = settled.refunds
    if refunds:
        logger.info("charge of order %s refunded", order_id, extra=_log(ctx))
    else:
        logger.info("order %s was not charged: nothing to refund", order_id, extra=_log(ctx))
    _announce(ctx, refunds, [reason] * len(refunds))


def _announce(ctx: HandlerContext, refunds: list[RefundRecord], reasons: list[str]) -> None:
    """RefundIssued per refund; ids derived from the cause, so a redelivery repeats them. The
    first keeps the plain id; more (the gateway held several charges under the order's
    reference) are told apart by their refund id."""
    for index, (refund, reason) in enumerate(zip(refunds, reasons, strict=True)):
        payload = RefundIssued(
            order_id=refund.order_id,
            gateway_refund_id=refund.gateway_refund_id,
            amount=refund.amount,
            reason=reason,
        )
        ctx.emit(payload, key=refund.gateway_refund_id if index else "")


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
    from include.services import run_with_gateway  # declares every consumer's queue

    run_with_gateway(charge_service)


if __name__ == "__main__":
    main()

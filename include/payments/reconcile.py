"""Reconciliation of a failed order with the gateway: no charge may outlive a failed order.

A charge can succeed at the gateway while our call to it fails (the answer timed out): our
transaction rolls back and nothing in our tables says money was taken. If the order fails
before a retry records that charge (out of stock first), no refund would ever be issued.
``refund_unrecorded_charges`` asks the gateway which charges it holds under the order's
reference, then records and refunds each one not yet refunded, in the caller's transaction.
``refund_charge_without_order`` does the same for a charge whose reference names no order
(found by ``reconciliation``); both go through ``refund_found_charge`` and its per-charge key.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from include.payments.gateway_client import GatewayCharge, GatewayClient
from include.payments.models import RefundRecord
from include.payments.shadow import effects_gateway
from include.payments.steps import charge_key, locked_status
from include.payments.tables import ChargeRow, OrderRow, RefundRow
from segue.store.inserts import insert_if_absent

logger = logging.getLogger(__name__)

MAX_REASON = 500  # the gateway's limit on a refund's reason


class OrphanRefund(RefundRecord):
    """A refund of a charge the gateway made for a failed order that we had not recorded."""

    reason: str


def orphan_refund_key(order_id: str, gateway_charge_id: str) -> str:
    """One key per gateway charge: never shared with ``steps.refund_key``'s own refunds."""
    return f"{order_id}:refund:{gateway_charge_id}"


def refund_unrecorded_charges(
    session: Session, gateway: GatewayClient, order_id: str
) -> list[OrphanRefund]:
    """Refund every gateway charge of a *failed* order that has no refund; the refunds made now.

    Takes the order's row lock. Each charge found is recorded (``charges``) and refunded in full
    with an idempotency key of its own, and the refund recorded (``refunds``), so a rolled-back
    attempt retried later gets the same refund back from the gateway. The refund's reason comes
    from the order row (which no longer changes once failed), so every retry sends the same
    request. An order that is not failed is left alone: its charge may still be recorded.
    """
    if locked_status(session, order_id) != "failed":
        return []
    reason = _reason(session, order_id)
    refunds = []
    for charge in effects_gateway(gateway, order_id).list_charges(reference=order_id):
        if charge.status != "succeeded" or charge.reference != order_id:
            continue
        if refund_of_charge(session, charge.id) is not None:
            continue
        refunds.append(refund_found_charge(session, gateway, order_id, charge, reason))
    return refunds


def refund_found_charge(
    session: Session, gateway: GatewayClient, order_id: str, charge: GatewayCharge, reason: str
) -> OrphanRefund:
    """Record ``charge`` as the order's and refund it in full under its own key, in ``session``.

    The caller has checked it has no refund yet. The key (``orphan_refund_key``) and ``reason``
    are the same on every retry, so a rolled-back attempt gets the same refund back.

    :param session: the caller's transaction (the charge and refund rows commit with it).
    :param gateway: the gateway that made the charge.
    :param order_id: the order the charge is under (its gateway ``reference``).
    :param charge: the gateway's charge.
    :param reason: the refund's reason, stable across retries.
    """
    _record_charge(session, order_id, charge)
    key = orphan_refund_key(order_id, charge.id)
    refund = effects_gateway(gateway, order_id).refund(
        idempotency_key=key, charge_id=charge.id, amount=charge.amount, reason=reason
    )
    values = {
        "order_id": order_id,
        "idempotency_key": key,
        "gateway_refund_id": refund.id,
        "gateway_charge_id": charge.id,
        "amount": refund.amount,
    }
    insert_if_absent(session, RefundRow.__table__, values)
    logger.warning(
        "order %s: unrecorded gateway charge %s refunded (%s)",
        order_id,
        charge.id,
        refund.id,
        extra={"correlation_id": order_id},
    )
    return OrphanRefund(**values, reason=reason)


def refund_charge_without_order(
    session: Session, gateway: GatewayClient, charge: GatewayCharge
) -> OrphanRefund | None:
    """Refund a gateway charge whose reference names no order in our store; None if it has a
    refund already. Same keys as a failed order's unrecorded charge (``orphan_refund_key``).

    :param session: the caller's transaction.
    :param gateway: the gateway that made the charge.
    :param charge: a succeeded charge with a ``reference`` we hold no order for.
    """
    if charge.reference is None:
        raise ValueError(f"charge {charge.id} has no reference: no order to refund it under")
    if refund_of_charge(session, charge.id) is not None:
        return None
    reason = f"order unknown: no order {charge.reference} in the store"[:MAX_REASON]
    return refund_found_charge(session, gateway, charge.reference, charge, reason)


def orphan_refunds(session: Session, order_id: str) -> list[OrphanRefund]:
    """The refunds ``refund_unrecorded_charges`` recorded for the order, oldest first."""
    rows = session.scalars(
        select(RefundRow)
        .where(
            RefundRow.order_id == order_id,
            RefundRow.idempotency_key.startswith(orphan_refund_key(order_id, ""), autoescape=True),
        )
        .order_by(RefundRow.id)
    ).all()
    if not rows:
        return []
    reason = _reason(session, order_id)
    return [
        OrphanRefund(
            order_id=row.order_id,
            gateway_refund_id=row.gateway_refund_id,
            gateway_charge_id=row.gateway_charge_id,
            amount=row.amount,
            idempotency_key=row.idempotency_key,
            reason=reason,
        )
        for row in rows
    ]


def _reason(session: Session, order_id: str) -> str:
    """The refund's reason, from the failed order's row (the same on every retry)."""
    order = session.get(OrderRow, order_id)
    failure = order.failure_reason if order is not None else None
    return f"order failed: {failure or 'no reason recorded'}"[:MAX_REASON]


def _record_charge(session: Session, order_id: str, charge: GatewayCharge) -> None:
    """Record the gateway's charge as the order's (under the order's charge key if it is free)."""
    known = session.scalar(select(ChargeRow.id).where(ChargeRow.gateway_charge_id == charge.id))
    if known is not None:
        return
    key = charge_key(order_id)
    if session.scalar(select(ChargeRow.id).where(ChargeRow.idempotency_key == key)) is not None:
        key = f"{key}:{charge.id}"  # a second charge under one reference: not made by our keys
    insert_if_absent(
        session,
        ChargeRow.__table__,
        {
            "order_id": order_id,
            "idempotency_key": key,
            "gateway_charge_id": charge.id,
            "amount": charge.amount,
            "currency": charge.currency,
        },
    )


def refund_of_charge(session: Session, gateway_charge_id: str) -> RefundRow | None:
    """The recorded refund of the gateway charge, under whichever key it was made."""
    return session.scalar(select(RefundRow).where(RefundRow.gateway_charge_id == gateway_charge_id))

"""Who owns a failed order's money: the one rule every path applies when an order fails.

No charge outlives a failed order. The linear DAG (a step abandoned), the saga (its last
compensation), the charge service (out of stock, a redelivered OrderValidated) and saga-replies
(a charge that came after its saga gave up) all call :func:`settle_failed_order`; what differs
between them is said by its parameters, not decided again in each.

Two kinds of charge can need a refund:

- the **recorded** charge (``charges`` under ``<order>:charge``), refunded in full under the
  order's key ``<order>:refund`` (``steps.refund_charge``), the same request on every retry;
- charges **found at the gateway** under the order's reference that have no refund (a charge
  whose answer was lost, see ``reconcile``), each recorded and refunded under
  ``<order>:refund:<gateway_charge_id>``.

A charge is refunded at most once, under whichever key reached it first: both refunders look for
a refund of the gateway charge before calling the gateway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from include.payments import reconcile, steps
from include.payments.errors import PaymentError
from include.payments.gateway_client import GatewayClient
from include.payments.models import ChargeRecord, RefundRecord
from include.payments.reconcile import OrphanRefund

log = logging.getLogger(__name__)

RecordedCharge = Literal["refund", "leave", "as_found"]
"""What to do with the order's recorded charge:

- ``refund``: refund it under the order's refund key (the charge service on out of stock, every
  abandoned DAG step, saga-replies' late charge);
- ``leave``: leave it alone (on a redelivered OrderValidated it is InventoryReservationFailed's
  to refund);
- ``as_found``: treat it like any charge found at the gateway: refunded under its per-charge key
  unless it already has a refund (the saga: CHARGING's own compensation refunds the charge the
  step completed with, and one it never completed with is refunded here).
"""


@dataclass(frozen=True)
class Settlement:
    """What settling a failed order's money found and did."""

    charge: ChargeRecord | None
    """The order's recorded charge when settling began (None: never recorded)."""
    orphans: tuple[OrphanRefund, ...] = ()
    """Refunds of charges found at the gateway under the order's reference (made now or before)."""
    refund: RefundRecord | None = None
    """The recorded charge's refund, with ``recorded="refund"`` (made now or before)."""
    made: tuple[RefundRecord, ...] = ()
    """The refunds this call made at the gateway (each charge refunded only once, ever)."""

    @property
    def refunds(self) -> list[RefundRecord]:
        """Every refund that settles the order's money, oldest first (each once)."""
        listed: list[RefundRecord] = list(self.orphans)
        keys = {refund.idempotency_key for refund in listed}
        if self.refund is not None and self.refund.idempotency_key not in keys:
            listed.append(self.refund)
        return listed


def settle_failed_order(
    session: Session,
    gateway: GatewayClient,
    order_id: str,
    *,
    fail_reason: str | None = None,
    recorded: RecordedCharge = "refund",
    find_unrecorded: bool = True,
    refund_reason: str = "compensation",
    best_effort: bool = False,
) -> Settlement:
    """Refund what the failed order ``order_id`` was charged, exactly once, in ``session``.

    Parameters:
        session: the caller's transaction; the refund rows commit (or roll back) with it. The
            order's row lock is taken first, so a charge being recorded concurrently (the charge
            service holds the lock while charging) is seen.
        gateway: the payment gateway that made the charges.
        order_id: the order (also the gateway's ``reference`` of its charges).
        fail_reason: fail the order with this reason first; None when it has failed already or
            failing it is someone else's (saga-replies: the saga's last compensation fails it).
        recorded: what to do with a recorded charge (see :data:`RecordedCharge`).
        find_unrecorded: with no charge recorded, ask the gateway for charges under the order's
            reference (only once the order is failed) and refund them; False trusts our tables.
        refund_reason: the reason sent with the recorded charge's refund. It must be the same on
            every retry of one path (the gateway checks that a replayed key has one request);
            refunds of charges found at the gateway take theirs from the order row.
        best_effort: the gateway part runs in a savepoint and a PaymentError (gateway down,
            rejected) is logged instead of raised: the order stays failed, and
            ``pipeline.reconcile_failed_order`` can settle it later.

    Returns what was found and refunded (:class:`Settlement`).
    """
    if fail_reason is not None:
        steps.fail_order(session, order_id, fail_reason)
    steps.locked_status(session, order_id)
    if not best_effort:
        return _settle(session, gateway, order_id, recorded, find_unrecorded, refund_reason)
    try:
        with session.begin_nested():
            return _settle(session, gateway, order_id, recorded, find_unrecorded, refund_reason)
    except PaymentError as exc:
        log.warning(
            "order %s: gateway not reconciled after the abandon: %s",
            order_id,
            exc,
            extra={"correlation_id": order_id},
        )
        return Settlement(charge=steps.recorded_charge(session, order_id))


def _settle(
    session: Session,
    gateway: GatewayClient,
    order_id: str,
    recorded: RecordedCharge,
    find_unrecorded: bool,
    refund_reason: str,
) -> Settlement:
    charge = steps.recorded_charge(session, order_id)
    made: list[RefundRecord] = []
    refund: RefundRecord | None = None
    if recorded == "as_found" or (charge is None and find_unrecorded):
        made.extend(reconcile.refund_unrecorded_charges(session, gateway, order_id))
    elif charge is not None and recorded == "refund":
        done_before = reconcile.refund_of_charge(session, charge.gateway_charge_id) is not None
        refund = steps.refund_charge(session, gateway, order_id, reason=refund_reason)
        if refund is not None and not done_before:
            made.append(refund)
    orphans = tuple(reconcile.orphan_refunds(session, order_id))
    return Settlement(charge=charge, orphans=orphans, refund=refund, made=tuple(made))

"""The payment workflow as five transactional steps, for orchestrators that call them in order.

Each function runs one step in its own transaction and returns JSON-safe data (Airflow XCom).
The linear DAG calls these; the saga and event paths call the same functions in ``steps``.
What the steps need (``PaymentDeps``) is in ``include.payments.deps``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from include.payments import money, payment_methods, steps
from include.payments.deps import PaymentDeps
from include.payments.errors import OrderNotFound
from segue.store.engine import session_scope

STEP_NAMES = ("validate", "charge", "update_inventory", "send_receipt", "notify_shipping")


def order_id_for_run(run_id: str) -> str:
    """A stable order id for a run that was triggered without one (same on every retry)."""
    return "ord-" + hashlib.sha256(run_id.encode()).hexdigest()[:20]


def validate(deps: PaymentDeps, data: Mapping[str, Any]) -> str:
    """Validate raw input (the card as a token, looked up at the gateway) and record the order."""
    order = payment_methods.order_from_input(deps.gateway, data)
    with session_scope(deps.engine) as session:
        return steps.validate_order(session, order).order_id


def charge(deps: PaymentDeps, order_id: str) -> dict[str, Any]:
    with session_scope(deps.engine) as session:
        return steps.charge_card(session, deps.gateway, order_id).model_dump(mode="json")


def update_inventory(deps: PaymentDeps, order_id: str) -> list[dict[str, Any]]:
    with session_scope(deps.engine) as session:
        return steps.update_inventory(session, order_id)


def send_receipt(deps: PaymentDeps, order_id: str) -> str:
    with session_scope(deps.engine) as session:
        return steps.send_receipt(session, order_id)


def notify_shipping(deps: PaymentDeps, order_id: str) -> dict[str, Any]:
    with session_scope(deps.engine) as session:
        return steps.notify_shipping(session, order_id)


def order_payload(deps: PaymentDeps, order_id: str) -> dict[str, Any]:
    """The recorded order (it holds no card number), for a dead-letter record."""
    with session_scope(deps.engine) as session:
        try:
            return steps.load_order(session, order_id).public_payload()
        except OrderNotFound:
            return {"order_id": order_id}


def fail_and_reconcile_on_abandon(
    deps: PaymentDeps, order_id: str
) -> Callable[[Session, str], object]:
    """The ``on_abandon`` hook of every DAG step: fail the order with the reason and settle its
    money (``money.settle_failed_order``), best effort: no charge outlives a failed order.

    A recorded charge is refunded, whichever step gave up (stock that ran out after the charge,
    a receipt that could not be sent), as the event path and the saga do; a charge step that ran
    out of retries on timeouts may have charged at the gateway every time it lost the answer
    (one charge: the key is the same), and that charge is found by the order's reference and
    refunded too. If the gateway is unreachable the order stays failed with its dead letter, and
    ``reconcile_failed_order`` (or the ``payment_reconciliation`` DAG) refunds it later.

    :param deps: the store and the gateway.
    :param order_id: the order.
    """

    def abandon(session: Session, reason: str) -> None:
        money.settle_failed_order(
            session,
            deps.gateway,
            order_id,
            fail_reason=reason,
            recorded="refund",
            best_effort=True,
        )

    return abandon


def reconcile_failed_order(deps: PaymentDeps, order_id: str) -> list[dict[str, Any]]:
    """Refund a failed order's gateway charges that have no refund now; the refunds made (none
    for an order that is not failed, or that was settled already)."""
    with session_scope(deps.engine) as session:
        settlement = money.settle_failed_order(session, deps.gateway, order_id, recorded="as_found")
        return [refund.model_dump(mode="json") for refund in settlement.made]

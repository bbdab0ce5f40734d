"""The order row: read, lock, advance, fail (re-exported by ``include.payments.steps``).

Core statements built once at import: every event handler runs several of these, and building a
statement (and its cache key) per call, or going through the ORM's identity map and flush,
cost more CPU than the database work itself. Nothing here loads ``OrderRow`` objects, so a
session's identity map never holds a stale order status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, literal, select, update
from sqlalchemy.orm import Session

from include.payments.errors import OrderNotFound
from include.payments.models import Order
from include.payments.tables import OrderRow
from segue.store.inserts import insert_if_absent

# Order statuses in the order they are reached; an order never moves backwards.
PROGRESS = ("validated", "charged", "inventory_updated", "receipt_sent", "completed")
TERMINAL = ("completed", "failed")

_orders = OrderRow.__table__
_by_id = _orders.c.order_id == bindparam("oid")


def status_in(statuses: Sequence[str]) -> ColumnElement[bool]:
    """``orders.status IN (...)`` over fixed statuses, one bound parameter each.

    A plain ``in_()`` of a tuple is an expanding parameter that SQLAlchemy renders anew at every
    execution: 35 CPU-µs more per statement (``benchmarks/statement_costs.py``), and the hot
    path runs several per order.

    :param statuses: the statuses the order may be in.
    """
    return _orders.c.status.in_([literal(status) for status in statuses])


_PAYLOAD = select(_orders.c.payload).where(_by_id)
_EXISTS = select(_orders.c.order_id).where(_by_id)
_LOCK_STATUS = select(_orders.c.status).where(_by_id).with_for_update()
_LOCK_ORDER = select(_orders.c.status, _orders.c.payload).where(_by_id).with_for_update()
# One UPDATE per target status: it moves the order only from an earlier, non-terminal status.
_ADVANCE = {
    status: update(_orders).where(_by_id, status_in(PROGRESS[:index])).values(status=status)
    for index, status in enumerate(PROGRESS)
}
_FAIL = (
    update(_orders)
    .where(_by_id, _orders.c.status.not_in(TERMINAL))
    .values(status="failed", failure_reason=bindparam("reason"))
)


def stored_order(payload: dict[str, Any]) -> Order:
    """The Order of a stored payload (validated: the column is plain JSON)."""
    return Order.model_validate(payload)


def load_order(session: Session, order_id: str) -> Order:
    payload = session.execute(_PAYLOAD, {"oid": order_id}).scalar()
    if payload is None:
        raise OrderNotFound(order_id)
    return stored_order(payload)


def locked_status(session: Session, order_id: str) -> str | None:
    """The order's status read under its row lock (None when unknown).

    Services that react to the same event in parallel (inventory and charge) take this lock
    first, so their decisions about one order happen one after the other.
    """
    return session.execute(_LOCK_STATUS, {"oid": order_id}).scalar()


def lock_order(session: Session, order_id: str) -> tuple[str, Order] | None:
    """``locked_status`` and the order itself, in one statement (None when unknown)."""
    row = session.execute(_LOCK_ORDER, {"oid": order_id}).first()
    return None if row is None else (row.status, stored_order(row.payload))


def advance_status(session: Session, order_id: str, status: str) -> None:
    """Move the order forward to ``status``; never backwards, never out of a terminal state.

    One conditional UPDATE (which takes the row lock); the row is read again only when nothing
    changed, to tell an unknown order (OrderNotFound) from one already as far or further.
    """
    statement = _ADVANCE.get(status)
    if statement is None:
        raise ValueError(f"not a status an order advances to: {status!r}")
    if session.execute(statement, {"oid": order_id}).rowcount == 1:
        return
    if session.execute(_EXISTS, {"oid": order_id}).first() is None:
        raise OrderNotFound(order_id)


def fail_order(session: Session, order_id: str, reason: str) -> bool:
    """Mark the order failed with the reason; False if it is unknown or already terminal."""
    params = {"oid": order_id, "reason": reason[:2000]}
    return session.execute(_FAIL, params).rowcount == 1


def record_failed_order(session: Session, order: Order, reason: str) -> bool:
    """Record an order rejected at validation as ``failed``; False if its id is already taken."""
    return insert_if_absent(
        session,
        _orders,
        {
            "order_id": order.order_id,
            "status": "failed",
            "customer_email": order.customer_email,
            "amount": order.amount,
            "currency": order.currency,
            "payload": order.model_dump(mode="json"),
            "failure_reason": reason[:2000],
        },
    )

"""The payment steps and their compensations, shared by every orchestration path.

Each function works inside the caller's transaction (``session``) so an event service can
commit the effect together with its inbox and outbox rows. Each is idempotent: running it
twice for the same order has one effect. Gateway calls use idempotency keys derived from the
order id, so a rolled-back transaction followed by a retry returns the same charge or refund.

The order-row functions live in ``order_rows`` and the inventory steps in ``inventory_steps``;
both are re-exported here, so every path keeps calling ``steps.<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, Update, bindparam, exists, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from include.payments.errors import InvalidOrder
from include.payments.gateway_client import GatewayClient
from include.payments.inventory_steps import (
    commit_inventory,
    release_reservation,
    reservation_lines,
    reserve_inventory,
    stock_available,
    update_inventory,
)
from include.payments.models import ChargeRecord, Order, RefundRecord
from include.payments.order_rows import (
    PROGRESS,
    TERMINAL,
    advance_status,
    fail_order,
    load_order,
    lock_order,
    locked_status,
    record_failed_order,
    status_in,
)
from include.payments.shadow import (
    ShadowReceiptRow,
    ShadowShippingNoticeRow,
    effects_gateway,
    is_shadow,
)
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptCancellationRow,
    ReceiptRow,
    RefundRow,
    ShippingNoticeRow,
    StockRow,
)
from segue.store.inserts import insert_if_absent

__all__ = [
    "PROGRESS",
    "TERMINAL",
    "advance_status",
    "cancel_receipt",
    "charge_card",
    "charge_key",
    "commit_inventory",
    "fail_order",
    "load_order",
    "lock_order",
    "locked_status",
    "notify_shipping",
    "parse_order",
    "record_failed_order",
    "recorded_charge",
    "refund_charge",
    "refund_key",
    "release_reservation",
    "reservation_lines",
    "reserve_inventory",
    "send_receipt",
    "stock_available",
    "update_inventory",
    "validate_order",
]

# Core statements built once (see order_rows): the hot path skips the ORM and statement building.
_charges, _refunds = ChargeRow.__table__, RefundRow.__table__
_KNOWN_SKUS = select(StockRow.__table__.c.sku).where(
    StockRow.__table__.c.sku.in_(bindparam("skus", expanding=True))
)
_CHARGE_BY_KEY = select(_charges).where(_charges.c.idempotency_key == bindparam("key"))
_REFUND_BY_KEY = select(_refunds).where(_refunds.c.idempotency_key == bindparam("key"))
_REFUND_OF_CHARGE = select(_refunds).where(_refunds.c.gateway_charge_id == bindparam("charge_id"))
_RECEIPT_EMAIL = select(ReceiptRow.__table__.c.email).where(
    ReceiptRow.__table__.c.order_id == bindparam("order_id")
)


def charge_key(order_id: str) -> str:
    return f"{order_id}:charge"


def refund_key(order_id: str) -> str:
    return f"{order_id}:refund"


def parse_order(data: Mapping[str, Any] | Order) -> Order:
    """Build an Order from raw input; InvalidOrder names the first bad field."""
    if isinstance(data, Order):
        return data
    try:
        return Order.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "order"
        raise InvalidOrder(field, error["msg"]) from None  # pydantic's text repeats the input


def validate_order(session: Session, data: Mapping[str, Any] | Order) -> Order:
    """Check the order (fields, known SKUs) and record it as ``validated``."""
    order = parse_order(data)
    skus = [item.sku for item in order.items]
    known = set(session.execute(_KNOWN_SKUS, {"skus": skus}).scalars())
    for index, item in enumerate(order.items):
        if item.sku not in known:
            raise InvalidOrder(f"items.{index}.sku", f"unknown sku {item.sku!r}")
    inserted = insert_if_absent(
        session,
        OrderRow.__table__,
        {
            "order_id": order.order_id,
            "status": "validated",
            "customer_email": order.customer_email,
            "amount": order.amount,
            "currency": order.currency,
            "payload": order.model_dump(mode="json"),
        },
    )
    if not inserted:
        existing = load_order(session, order.order_id)
        if existing != order:
            raise InvalidOrder("order_id", f"{order.order_id!r} was already used for another order")
    return order


def charge_card(session: Session, gateway: GatewayClient, order_id: str) -> ChargeRecord:
    """Charge the order's amount once; a second call returns the recorded charge."""
    existing = _charge_row(session, order_id)
    if existing is not None:
        return _charge_record(existing)
    order = load_order(session, order_id)
    charge = effects_gateway(gateway, order_id).charge(
        idempotency_key=charge_key(order_id),
        amount=order.amount,
        currency=order.currency,
        payment_method=order.payment_method,
        reference=order_id,
    )
    values = {
        "order_id": order_id,
        "idempotency_key": charge_key(order_id),
        "gateway_charge_id": charge.id,
        "amount": charge.amount,
        "currency": charge.currency,
    }
    insert_if_absent(session, ChargeRow.__table__, values)
    advance_status(session, order_id, "charged")
    return ChargeRecord(**values)


def send_receipt(session: Session, order_id: str, *, order: Order | None = None) -> str:
    """Record the receipt sent to the customer (one per order); returns its text.

    ``order`` is the order as the caller already read it, to skip reading it again.
    """
    order = order if order is not None else load_order(session, order_id)
    lines = "\n".join(f"  {item.quantity} x {item.sku}" for item in order.items)
    body = (
        f"Receipt for order {order.order_id}\n{lines}\n"
        f"Total charged: {order.amount} {order.currency}\n"
    )
    insert_if_absent(
        session,
        (ShadowReceiptRow if is_shadow(order_id) else ReceiptRow).__table__,
        {
            "order_id": order_id,
            "email": order.customer_email,
            "amount": order.amount,
            "currency": order.currency,
            "body": body,
        },
    )
    advance_status(session, order_id, "receipt_sent")
    complete_when_done(session, order_id)
    return body


def notify_shipping(session: Session, order_id: str) -> dict[str, Any]:
    """Record the shipping notice (one per order); the order completes once its receipt is
    recorded too (see :func:`complete_when_done`)."""
    order = load_order(session, order_id)
    notice = {
        "order_id": order_id,
        "address": order.shipping_address.model_dump(mode="json"),
        "items": [item.model_dump(mode="json") for item in order.items],
    }
    notices = ShadowShippingNoticeRow if is_shadow(order_id) else ShippingNoticeRow
    insert_if_absent(session, notices.__table__, notice)
    complete_when_done(session, order_id)
    return notice


def _completes_when_both_recorded(receipts: Table, notices: Table) -> Update:
    """UPDATE the order to completed from an earlier status when both rows exist (one
    statement instead of two existence checks and an advance)."""
    orders = OrderRow.__table__
    return (
        update(orders)
        .where(
            orders.c.order_id == bindparam("oid"),
            status_in(PROGRESS[:-1]),  # as advance_status: forward only
            exists().where(receipts.c.order_id == bindparam("oid")),
            exists().where(notices.c.order_id == bindparam("oid")),
        )
        .values(status="completed")
    )


_COMPLETE = _completes_when_both_recorded(ReceiptRow.__table__, ShippingNoticeRow.__table__)
_COMPLETE_SHADOW = _completes_when_both_recorded(
    ShadowReceiptRow.__table__, ShadowShippingNoticeRow.__table__
)


def complete_when_done(session: Session, order_id: str) -> bool:
    """Mark the order completed if both last steps (receipt and shipping) are recorded.

    The receipt and the shipping notice are written in parallel on the event and saga paths,
    each in its own transaction. Each writer inserts its row, then takes the order's row lock
    and looks for the other's: the one that locks last sees both rows (READ COMMITTED reads
    a fresh snapshot after the lock wait), so exactly one of them completes the order and
    neither completes it alone. Returns True when this call completed the order.

    The lock is its own statement on purpose: a single ``UPDATE .. WHERE EXISTS`` that waited
    for the lock would keep the snapshot it took before waiting, miss the other writer's row,
    and then neither writer would complete the order. Once the lock is held, the look and the
    update are one statement.
    """
    if locked_status(session, order_id) in (*TERMINAL, None):
        return False
    complete = _COMPLETE_SHADOW if is_shadow(order_id) else _COMPLETE
    return session.execute(complete, {"oid": order_id}).rowcount == 1


# --- compensations -------------------------------------------------------------------------


def refund_charge(
    session: Session, gateway: GatewayClient, order_id: str, reason: str = "compensation"
) -> RefundRecord | None:
    """Refund the order's charge in full, once; None when there was no charge to refund."""
    existing = session.execute(_REFUND_BY_KEY, {"key": refund_key(order_id)}).first()
    if existing is not None:
        return _refund_record(existing)
    charge = _charge_row(session, order_id)
    if charge is None:
        return None
    # refunded by include.payments.reconcile, under its own key
    reconciled = session.execute(_REFUND_OF_CHARGE, {"charge_id": charge.gateway_charge_id}).first()
    if reconciled is not None:
        return _refund_record(reconciled)
    refund = effects_gateway(gateway, order_id).refund(
        idempotency_key=refund_key(order_id),
        charge_id=charge.gateway_charge_id,
        amount=charge.amount,
        reason=reason,
    )
    values = {
        "order_id": order_id,
        "idempotency_key": refund_key(order_id),
        "gateway_refund_id": refund.id,
        "gateway_charge_id": charge.gateway_charge_id,
        "amount": refund.amount,
    }
    insert_if_absent(session, RefundRow.__table__, values)
    return RefundRecord(**values)


def cancel_receipt(session: Session, order_id: str) -> bool:
    """Tell the customer their receipt is void (once); False when no receipt was sent."""
    email = session.execute(_RECEIPT_EMAIL, {"order_id": order_id}).scalar()
    if email is None:
        return False
    insert_if_absent(
        session,
        ReceiptCancellationRow.__table__,
        {"order_id": order_id, "email": email},
    )
    return True


def _charge_row(session: Session, order_id: str) -> Row[Any] | None:
    return session.execute(_CHARGE_BY_KEY, {"key": charge_key(order_id)}).first()


def _charge_record(row: Row[Any]) -> ChargeRecord:
    return ChargeRecord(
        order_id=row.order_id,
        gateway_charge_id=row.gateway_charge_id,
        amount=row.amount,
        currency=row.currency,
        idempotency_key=row.idempotency_key,
    )


def _refund_record(row: Row[Any]) -> RefundRecord:
    return RefundRecord(
        order_id=row.order_id,
        gateway_refund_id=row.gateway_refund_id,
        gateway_charge_id=row.gateway_charge_id,
        amount=row.amount,
        idempotency_key=row.idempotency_key,
    )


# --- event path -------------------------------------------------------------------------------


def recorded_charge(session: Session, order_id: str) -> ChargeRecord | None:
    """The order's recorded charge, without calling the gateway; None when never charged."""
    row = _charge_row(session, order_id)
    return None if row is None else _charge_record(row)

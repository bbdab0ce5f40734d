"""The payment steps and their compensations, shared by every orchestration path.

Each function works inside the caller's transaction (``session``) so an event service can
commit the effect together with its inbox and outbox rows. Each is idempotent: running it
twice for the same order has one effect. Gateway calls use idempotency keys derived from the
order id, so a rolled-back transaction followed by a retry returns the same charge or refund.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from include.payments.errors import InvalidOrder, OrderNotFound, OutOfStock
from include.payments.gateway_client import GatewayClient
from include.payments.models import ChargeRecord, Order, RefundRecord
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptCancellationRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
    StockRow,
)
from segue.store.inserts import insert_if_absent

# Order statuses in the order they are reached; an order never moves backwards.
PROGRESS = ("validated", "charged", "inventory_updated", "receipt_sent", "completed")
TERMINAL = ("completed", "failed")


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
        raise InvalidOrder(field, error["msg"]) from exc


def validate_order(session: Session, data: Mapping[str, Any] | Order) -> Order:
    """Check the order (fields, known SKUs) and record it as ``validated``."""
    order = parse_order(data)
    known = set(session.scalars(select(StockRow.sku).where(StockRow.sku.in_(_skus(order)))))
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


def load_order(session: Session, order_id: str) -> Order:
    row = session.get(OrderRow, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    return Order.model_validate(row.payload)


def charge_card(session: Session, gateway: GatewayClient, order_id: str) -> ChargeRecord:
    """Charge the order's amount once; a second call returns the recorded charge."""
    existing = _charge_row(session, order_id)
    if existing is not None:
        return _charge_record(existing)
    order = load_order(session, order_id)
    charge = gateway.charge(
        idempotency_key=charge_key(order_id),
        amount=order.amount,
        currency=order.currency,
        card_number=order.card_number,
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


def reserve_inventory(session: Session, order_id: str) -> list[dict[str, Any]]:
    """Hold stock for every line; OutOfStock leaves nothing held by this call."""
    order = load_order(session, order_id)
    for item in order.items:
        already = session.scalar(
            select(ReservationRow.id).where(
                ReservationRow.order_id == order_id, ReservationRow.sku == item.sku
            )
        )
        if already is not None:
            continue
        taken = session.execute(
            update(StockRow)
            .where(StockRow.sku == item.sku, StockRow.available >= item.quantity)
            .values(available=StockRow.available - item.quantity)
        ).rowcount
        if taken != 1:
            available = session.scalar(select(StockRow.available).where(StockRow.sku == item.sku))
            raise OutOfStock(item.sku, item.quantity, available or 0)
        session.add(
            ReservationRow(
                order_id=order_id, sku=item.sku, quantity=item.quantity, status="reserved"
            )
        )
    session.flush()
    return [{"sku": item.sku, "quantity": item.quantity} for item in order.items]


def commit_inventory(session: Session, order_id: str) -> int:
    """Turn the order's reservations into committed stock movements; returns rows changed."""
    changed = session.execute(
        update(ReservationRow)
        .where(ReservationRow.order_id == order_id, ReservationRow.status == "reserved")
        .values(status="committed")
    ).rowcount
    advance_status(session, order_id, "inventory_updated")
    return changed


def update_inventory(session: Session, order_id: str) -> list[dict[str, Any]]:
    """The linear pipeline's inventory step: reserve, then commit at once."""
    lines = reserve_inventory(session, order_id)
    commit_inventory(session, order_id)
    return lines


def send_receipt(session: Session, order_id: str) -> str:
    """Record the receipt sent to the customer (one per order); returns its text."""
    order = load_order(session, order_id)
    lines = "\n".join(f"  {item.quantity} x {item.sku}" for item in order.items)
    body = (
        f"Receipt for order {order.order_id}\n{lines}\n"
        f"Total charged: {order.amount} {order.currency}\n"
    )
    insert_if_absent(
        session,
        ReceiptRow.__table__,
        {
            "order_id": order_id,
            "email": order.customer_email,
            "amount": order.amount,
            "currency": order.currency,
            "body": body,
        },
    )
    advance_status(session, order_id, "receipt_sent")
    return body


def notify_shipping(session: Session, order_id: str) -> dict[str, Any]:
    """Record the shipping notice (one per order); the order is then complete."""
    order = load_order(session, order_id)
    notice = {
        "order_id": order_id,
        "address": order.shipping_address.model_dump(mode="json"),
        "items": [item.model_dump(mode="json") for item in order.items],
    }
    insert_if_absent(session, ShippingNoticeRow.__table__, notice)
    advance_status(session, order_id, "completed")
    return notice


# --- compensations -------------------------------------------------------------------------


def refund_charge(
    session: Session, gateway: GatewayClient, order_id: str, reason: str = "compensation"
) -> RefundRecord | None:
    """Refund the order's charge in full, once; None when there was no charge to refund."""
    existing = session.scalar(
        select(RefundRow).where(RefundRow.idempotency_key == refund_key(order_id))
    )
    if existing is not None:
        return _refund_record(existing)
    charge = _charge_row(session, order_id)
    if charge is None:
        return None
    reconciled = session.scalar(  # refunded by include.payments.reconcile, under its own key
        select(RefundRow).where(RefundRow.gateway_charge_id == charge.gateway_charge_id)
    )
    if reconciled is not None:
        return _refund_record(reconciled)
    refund = gateway.refund(
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
    receipt = session.scalar(select(ReceiptRow).where(ReceiptRow.order_id == order_id))
    if receipt is None:
        return False
    insert_if_absent(
        session,
        ReceiptCancellationRow.__table__,
        {"order_id": order_id, "email": receipt.email},
    )
    return True


def release_reservation(session: Session, order_id: str) -> int:
    """Give back the order's stock (reserved or committed, not yet shipped); returns lines."""
    held = list(
        session.scalars(
            select(ReservationRow)
            .where(
                ReservationRow.order_id == order_id,
                ReservationRow.status.in_(("reserved", "committed")),
            )
            .with_for_update()
        )
    )
    for reservation in held:
        session.execute(
            update(StockRow)
            .where(StockRow.sku == reservation.sku)
            .values(available=StockRow.available + reservation.quantity)
        )
        reservation.status = "released"
    session.flush()
    return len(held)


# --- order status ---------------------------------------------------------------------------


def advance_status(session: Session, order_id: str, status: str) -> None:
    """Move the order forward to ``status``; never backwards, never out of a terminal state."""
    row = session.get(OrderRow, order_id, with_for_update=True)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status in TERMINAL:
        return
    if PROGRESS.index(status) > PROGRESS.index(row.status):
        row.status = status
        session.flush()


def fail_order(session: Session, order_id: str, reason: str) -> bool:
    """Mark the order failed with the reason; False if it is unknown or already terminal."""
    row = session.get(OrderRow, order_id, with_for_update=True)
    if row is None or row.status in TERMINAL:
        return False
    row.status = "failed"
    row.failure_reason = reason[:2000]
    session.flush()
    return True


def _skus(order: Order) -> list[str]:
    return [item.sku for item in order.items]


def _charge_row(session: Session, order_id: str) -> ChargeRow | None:
    return session.scalar(
        select(ChargeRow).where(ChargeRow.idempotency_key == charge_key(order_id))
    )


def _charge_record(row: ChargeRow) -> ChargeRecord:
    return ChargeRecord(
        order_id=row.order_id,
        gateway_charge_id=row.gateway_charge_id,
        amount=row.amount,
        currency=row.currency,
        idempotency_key=row.idempotency_key,
    )


def _refund_record(row: RefundRow) -> RefundRecord:
    return RefundRecord(
        order_id=row.order_id,
        gateway_refund_id=row.gateway_refund_id,
        gateway_charge_id=row.gateway_charge_id,
        amount=row.amount,
        idempotency_key=row.idempotency_key,
    )


# --- event path: decisions taken under the order's row lock ------------------------------------


def locked_status(session: Session, order_id: str) -> str | None:
    """The order's status read under its row lock (None when unknown).

    Services that react to the same event in parallel (inventory and charge) take this lock
    first, so their decisions about one order happen one after the other.
    """
    row = session.get(OrderRow, order_id, with_for_update=True, populate_existing=True)
    return None if row is None else row.status


def record_failed_order(session: Session, order: Order, reason: str) -> bool:
    """Record an order rejected at validation as ``failed``; False if its id is already taken."""
    return insert_if_absent(
        session,
        OrderRow.__table__,
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


def recorded_charge(session: Session, order_id: str) -> ChargeRecord | None:
    """The order's recorded charge, without calling the gateway; None when never charged."""
    row = _charge_row(session, order_id)
    return None if row is None else _charge_record(row)


def reservation_lines(session: Session, order_id: str, statuses: tuple[str, ...]) -> int:
    """How many of the order's reservation lines are in one of ``statuses``."""
    return len(
        session.scalars(
            select(ReservationRow.id).where(
                ReservationRow.order_id == order_id, ReservationRow.status.in_(statuses)
            )
        ).all()
    )


def stock_available(session: Session, sku: str) -> int:
    """Units of ``sku`` available now (0 for an unknown SKU)."""
    return session.scalar(select(StockRow.available).where(StockRow.sku == sku)) or 0

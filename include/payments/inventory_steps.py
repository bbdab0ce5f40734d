"""Inventory steps: reserve, commit, release stock (re-exported by ``include.payments.steps``).

Set-based Core statements built once at import, a fixed number per order whatever its lines:
the stock rows of an order are locked in SKU order (one ``SELECT .. ORDER BY sku FOR UPDATE``,
which also says which lines are already reserved), checked, and only then written, so two
orders sharing SKUs lock them in the same order (no deadlock) and a short line leaves nothing
taken. The unique key (order_id, sku) keeps a redelivered reservation from taking stock twice.

A shadow order (``include.payments.shadow``) checks the stock without locking or taking it, and
gives nothing back on release: its reservation rows only record what it would have held.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from include.payments.errors import OutOfStock
from include.payments.models import LineItem, Order
from include.payments.order_rows import advance_status, load_order
from include.payments.shadow import is_shadow
from include.payments.tables import ReservationRow, StockRow
from segue.store.inserts import insert_many_if_absent

HELD = ("reserved", "committed")

_stock = StockRow.__table__
_res = ReservationRow.__table__
_of_order = _res.c.order_id == bindparam("oid")
# Stock rows of the order's SKUs, locked in SKU order, with the order's reservation if any.
_LOCK_STOCK = (
    select(_stock.c.sku, _stock.c.available, _res.c.id.label("reservation_id"))
    .select_from(_stock.outerjoin(_res, and_(_res.c.sku == _stock.c.sku, _of_order)))
    .where(_stock.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(_stock.c.sku)
)
_LOCK_STOCK_FOR_UPDATE = _LOCK_STOCK.with_for_update(of=_stock)
_TAKE = (
    update(_stock)
    .where(_stock.c.sku == bindparam("line_sku"))
    .values(available=_stock.c.available - bindparam("line_quantity"))
)
_GIVE_BACK = (
    update(_stock)
    .where(_stock.c.sku == bindparam("line_sku"))
    .values(available=_stock.c.available + bindparam("line_quantity"))
)
_COMMIT = update(_res).where(_of_order, _res.c.status == "reserved").values(status="committed")
_RELEASE = (
    update(_res)
    .where(_of_order, _res.c.status.in_(HELD))
    .values(status="released")
    .returning(_res.c.sku, _res.c.quantity)
)
_COUNT = (
    select(func.count())
    .select_from(_res)
    .where(_of_order, _res.c.status.in_(bindparam("statuses", expanding=True)))
)
_AVAILABLE = select(_stock.c.available).where(_stock.c.sku == bindparam("sku"))


def reserve_inventory(
    session: Session, order_id: str, *, order: Order | None = None
) -> list[dict[str, Any]]:
    """Hold stock for every line; OutOfStock (the first short line) leaves nothing held.

    ``order`` is the order as the caller just read it (``lock_order``), to skip reading it again.
    """
    order = order if order is not None else load_order(session, order_id)
    skus = sorted(item.sku for item in order.items)
    shadow = is_shadow(order_id)  # checks the stock: no lock, nothing taken
    statement = _LOCK_STOCK if shadow else _LOCK_STOCK_FOR_UPDATE
    rows = session.execute(statement, {"oid": order_id, "skus": skus}).all()
    stock = {row.sku: row for row in rows}
    pending: list[LineItem] = []
    for item in order.items:
        row = stock.get(item.sku)
        if row is not None and row.reservation_id is not None:
            continue  # reserved by an earlier delivery
        available = 0 if row is None else row.available
        if available < item.quantity:
            raise OutOfStock(item.sku, item.quantity, available)
        pending.append(item)
    if pending:
        pending.sort(key=lambda item: item.sku)
        reservations = [
            {"order_id": order_id, "sku": item.sku, "quantity": item.quantity, "status": "reserved"}
            for item in pending
        ]
        inserted = insert_many_if_absent(session, _res, reservations, key="sku")
        takes = [
            {"line_sku": item.sku, "line_quantity": item.quantity}
            for item in pending
            if item.sku in inserted
        ]
        if takes and not shadow:
            session.execute(_TAKE, takes)
    return [{"sku": item.sku, "quantity": item.quantity} for item in order.items]


def commit_inventory(session: Session, order_id: str) -> int:
    """Turn the order's reservations into committed stock movements; returns rows changed."""
    changed = session.execute(_COMMIT, {"oid": order_id}).rowcount
    advance_status(session, order_id, "inventory_updated")
    return changed


def update_inventory(session: Session, order_id: str) -> list[dict[str, Any]]:
    """The linear pipeline's inventory step: reserve, then commit at once."""
    lines = reserve_inventory(session, order_id)
    commit_inventory(session, order_id)
    return lines


def release_reservation(session: Session, order_id: str) -> int:
    """Give back the order's stock (reserved or committed, not yet shipped); returns lines."""
    released = session.execute(_RELEASE, {"oid": order_id}).all()
    if released and not is_shadow(order_id):
        gives = sorted(
            ({"line_sku": row.sku, "line_quantity": row.quantity} for row in released),
            key=lambda line: line["line_sku"],
        )
        session.execute(_GIVE_BACK, gives)
    return len(released)


def reservation_lines(session: Session, order_id: str, statuses: tuple[str, ...]) -> int:
    """How many of the order's reservation lines are in one of ``statuses``."""
    params = {"oid": order_id, "statuses": list(statuses)}
    return int(session.execute(_COUNT, params).scalar_one())


def stock_available(session: Session, sku: str) -> int:
    """Units of ``sku`` available now (0 for an unknown SKU)."""
    return session.execute(_AVAILABLE, {"sku": sku}).scalar() or 0

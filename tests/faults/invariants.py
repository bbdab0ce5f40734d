"""What the business tables must say after any run of the choreography, faults or not.

Read from PostgreSQL and the gateway's ledger, never from logs: each order terminal, charged at
most once, refunded exactly when it failed after a charge, no stock left held, and the customer
told about exactly the completed orders.
"""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import Engine, select

from include.gateway.admin import stats as gateway_stats
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
)
from segue.store.engine import session_scope


def per_order(session, table: type, order_ids: list[str]) -> Counter[str]:  # type: ignore[no-untyped-def]
    rows = session.scalars(select(table.order_id).where(table.order_id.in_(order_ids)))
    return Counter(rows)


def lines_in(session, ids: list[str], status: str) -> Counter[str]:  # type: ignore[no-untyped-def]
    query = select(ReservationRow.order_id).where(
        ReservationRow.order_id.in_(ids), ReservationRow.status == status
    )
    return Counter(session.scalars(query))


def assert_payment_invariants(
    engine: Engine, kinds: dict[str, str], gateway_url: str, settle_seconds: float = 60.0
) -> None:
    """``kinds`` maps order id -> "good" | "declined" | "out_of_stock".

    An order is terminal before its compensation is done (out of stock fails the order, then
    the charge service refunds), so the check is repeated until it holds, for at most
    ``settle_seconds``: an effect in flight settles, a double or missing effect does not.
    """
    deadline = time.monotonic() + settle_seconds
    while problems := payment_violations(engine, kinds, gateway_url):
        if time.monotonic() > deadline:
            raise AssertionError("\n".join(problems[:20]))
        time.sleep(0.5)


def payment_violations(engine: Engine, kinds: dict[str, str], gateway_url: str) -> list[str]:
    """Every way the business tables and the gateway's ledger disagree with ``kinds`` now."""
    ids = list(kinds)
    with session_scope(engine) as session:
        status = dict(
            session.execute(
                select(OrderRow.order_id, OrderRow.status).where(OrderRow.order_id.in_(ids))
            ).all()  # type: ignore[arg-type]
        )
        charges = per_order(session, ChargeRow, ids)
        refunds = per_order(session, RefundRow, ids)
        receipts = per_order(session, ReceiptRow, ids)
        notices = per_order(session, ShippingNoticeRow, ids)
        reserved = lines_in(session, ids, "reserved")
        committed = lines_in(session, ids, "committed")
    problems = []
    for order_id, kind in kinds.items():
        got = {
            "status": status.get(order_id),
            "charges": charges[order_id],
            "refunds": refunds[order_id],
            "receipts": receipts[order_id],
            "notices": notices[order_id],
            "reserved": reserved[order_id],
            "committed": committed[order_id],
        }
        if kind == "good":  # every line committed (the factory's orders have two)
            want = {"status": "completed", "charges": 1, "refunds": 0, "receipts": 1, "notices": 1}
            want.update(reserved=0, committed=2)
        elif kind == "declined":
            want = {"status": "failed", "charges": 0, "refunds": 0, "receipts": 0, "notices": 0}
            want.update(reserved=0, committed=0)
        else:  # out of stock: refunded if (and only if) it had been charged, at most once
            charged = min(got["charges"], 1)
            want = {"status": "failed", "charges": charged, "refunds": charged}
            want.update(receipts=0, notices=0, reserved=0, committed=0)
        if got != want:
            problems.append(f"{order_id} ({kind}): got {got}, want {want}")
    ledger = gateway_stats(gateway_url)
    if ledger["charges"]["succeeded"] != sum(charges.values()):
        problems.append(
            f"gateway charged {ledger['charges']} but the store has {sum(charges.values())}"
        )
    if ledger["refunds"] != sum(refunds.values()):
        problems.append(
            f"gateway refunded {ledger['refunds']} but the store has {sum(refunds.values())}"
        )
    return problems

"""What the business tables must say after any run of the payment workflow, faults or not.

Read from PostgreSQL and the gateway's ledger, never from logs: each order terminal, charged at
most once, refunded exactly when it failed after a charge, no stock left held, and the customer
told about exactly the completed orders.

The ledger is compared either in total (a gateway only this run used: its counters must equal
the store's) or order by order (a shared gateway: the charges it holds under each order's
reference), see ``ledger``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from include.gateway.admin import stats as gateway_stats
from include.payments.gateway_client import GatewayClient
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptCancellationRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
)
from segue.store.engine import session_scope

Ledger = Literal["totals", "per_order"]


def per_order(session: Session, table: type, order_ids: list[str]) -> Counter[str]:
    """How many rows of ``table`` each of ``order_ids`` has."""
    rows = session.scalars(select(table.order_id).where(table.order_id.in_(order_ids)))  # type: ignore[attr-defined]
    return Counter(rows)


def lines_in(session: Session, ids: list[str], status: str) -> Counter[str]:
    """How many reservation lines of each order are in ``status``."""
    query = select(ReservationRow.order_id).where(
        ReservationRow.order_id.in_(ids), ReservationRow.status == status
    )
    return Counter(session.scalars(query))


def assert_payment_invariants(
    engine: Engine,
    kinds: dict[str, str],
    gateway_url: str,
    settle_seconds: float = 60.0,
    ledger: Ledger = "totals",
) -> None:
    """Raise AssertionError naming the violations unless every invariant holds.

    An order is terminal before its compensation is done (out of stock fails the order, then
    the charge service refunds), so the check is repeated until it holds, for at most
    ``settle_seconds``: an effect in flight settles, a double or missing effect does not.

    :param engine: the business store.
    :param kinds: order id -> "good" | "declined" | "out_of_stock".
    :param gateway_url: the gateway whose ledger is compared.
    :param settle_seconds: how long effects in flight may take to settle.
    :param ledger: ``totals`` or ``per_order`` (see the module).
    """
    problems = settled_violations(engine, kinds, gateway_url, settle_seconds, ledger)
    if problems:
        raise AssertionError("\n".join(problems[:20]))


def settled_violations(
    engine: Engine,
    kinds: dict[str, str],
    gateway_url: str,
    settle_seconds: float = 60.0,
    ledger: Ledger = "per_order",
) -> list[str]:
    """The violations left once ``settle_seconds`` have passed (none: the invariants hold).

    :param engine: the business store.
    :param kinds: order id -> kind.
    :param gateway_url: the gateway whose ledger is compared.
    :param settle_seconds: how long effects in flight may take to settle.
    :param ledger: ``totals`` or ``per_order``.
    """
    deadline = time.monotonic() + settle_seconds
    while problems := payment_violations(engine, kinds, gateway_url, ledger):
        if time.monotonic() > deadline:
            return problems
        time.sleep(0.5)
    return []


def payment_violations(
    engine: Engine, kinds: dict[str, str], gateway_url: str, ledger: Ledger = "totals"
) -> list[str]:
    """Every way the business tables and the gateway's ledger disagree with ``kinds`` now.

    :param engine: the business store.
    :param kinds: order id -> kind.
    :param gateway_url: the gateway whose ledger is compared.
    :param ledger: ``totals`` or ``per_order``.
    """
    ids = list(kinds)
    with session_scope(engine) as session:
        status = dict(
            session.execute(
                select(OrderRow.order_id, OrderRow.status).where(OrderRow.order_id.in_(ids))
            ).all()  # type: ignore[arg-type]
        )
        charges = per_order(session, ChargeRow, ids)
        refunds = per_order(session, RefundRow, ids)
        # A receipt that was sent and then voided (the saga's compensation on a later failure)
        # does not stand: the customer was told it is void.
        voided = per_order(session, ReceiptCancellationRow, ids)
        receipts = per_order(session, ReceiptRow, ids) - voided
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
        if got != (want := _wanted(kind, got["charges"])):
            problems.append(f"{order_id} ({kind}): got {got}, want {want}")
    if ledger == "totals":
        problems += _ledger_totals(gateway_url, charges, refunds)
    else:
        problems += _ledger_per_order(gateway_url, ids, charges, refunds)
    return problems


def _wanted(kind: str, charges: int) -> dict[str, object]:
    """What an order of ``kind`` must show (out of stock: refunded iff charged, at most once)."""
    if kind == "good":  # every line committed (the mix's good orders have two)
        want = {"status": "completed", "charges": 1, "refunds": 0, "receipts": 1, "notices": 1}
        want.update(reserved=0, committed=2)
    elif kind == "declined":
        want = {"status": "failed", "charges": 0, "refunds": 0, "receipts": 0, "notices": 0}
        want.update(reserved=0, committed=0)
    else:
        charged = min(charges, 1)
        want = {"status": "failed", "charges": charged, "refunds": charged}
        want.update(receipts=0, notices=0, reserved=0, committed=0)
    return want  # type: ignore[return-value]


def _ledger_totals(gateway_url: str, charges: Counter[str], refunds: Counter[str]) -> list[str]:
    ledger = gateway_stats(gateway_url)
    problems = []
    if ledger["charges"]["succeeded"] != sum(charges.values()):
        problems.append(
            f"gateway charged {ledger['charges']} but the store has {sum(charges.values())}"
        )
    if ledger["refunds"] != sum(refunds.values()):
        problems.append(
            f"gateway refunded {ledger['refunds']} but the store has {sum(refunds.values())}"
        )
    return problems


def _ledger_per_order(
    gateway_url: str, ids: list[str], charges: Counter[str], refunds: Counter[str]
) -> list[str]:
    """The gateway's succeeded charges and refunds under each order's reference against ours."""
    problems = []
    client = GatewayClient(gateway_url)
    try:
        for order_id in ids:
            held = [c for c in client.list_charges(reference=order_id) if c.status == "succeeded"]
            refunded = sum(1 for c in held if c.amount_refunded > 0)
            if len(held) != charges[order_id] or refunded != refunds[order_id]:
                problems.append(
                    f"{order_id}: the gateway holds {len(held)} charges ({refunded} refunded), "
                    f"the store {charges[order_id]} ({refunds[order_id]} refunded)"
                )
    finally:
        client.close()
    return problems

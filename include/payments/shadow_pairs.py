"""The shadow comparator's observations: each mirrored order and its shadow, as the store has
them (``SEGUE_SHADOW_PAIRS``; the library compares and aggregates, ``segue.rollout.shadow``).

Per side: the outcome (``completed``, ``failed``, else ``pending``), the failure's category
(:func:`reason_category`), the money kept (charges minus refunds, exact), the stock held at the
end (committed reservation lines) and the latency from acceptance (the real order's placement,
the shadow's placement in the same transaction) to the order row's last change once terminal.
An order refused before it had a row (the DAG path's validate step abandoned) is failed by its
dead letter, at the dead letter's time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from include.payments.order_rows import TERMINAL
from include.payments.shadow import ShadowOrderRow
from include.payments.tables import (
    ChargeRow,
    OrderPlacementRow,
    OrderRow,
    RefundRow,
    ReservationRow,
)
from segue.rollout.shadow import Observation, Pair
from segue.store.dead_letters import DeadLetter

ZERO = Decimal("0.00")
_CATEGORIES = (
    ("invalid order", "invalid"),
    ("card declined", "declined"),
    ("charge failed", "declined"),
    ("out of stock", "out_of_stock"),
)


def reason_category(failure_reason: str | None) -> str:
    """The category of a failed order's reason: ``invalid``, ``declined``, ``out_of_stock`` or
    ``technical`` (anything else: dead-lettered, gateway rejected, abandoned).

    :param failure_reason: the order row's ``failure_reason``.
    """
    text = (failure_reason or "").lower()
    for marker, category in _CATEGORIES:
        if marker in text:
            return category
    return "technical"


def shadow_pairs(session: Session, limit: int) -> list[Pair]:
    """The newest ``limit`` mirrored orders with their shadows, observed (newest first).

    :param session: an open session on the business store.
    :param limit: how many pairs at most.
    """
    mirrored = session.scalars(
        select(ShadowOrderRow).order_by(ShadowOrderRow.created_at.desc()).limit(limit)
    ).all()
    real_ids = [row.order_id for row in mirrored]
    shadow_ids = [row.shadow_order_id for row in mirrored]
    ids = real_ids + shadow_ids
    placed = {
        order_id: at
        for order_id, at in session.execute(
            select(OrderPlacementRow.order_id, OrderPlacementRow.created_at).where(
                OrderPlacementRow.order_id.in_(real_ids)
            )
        )
    }
    sides = _Sides(session, ids)
    return [
        Pair(
            subject_id=row.order_id,
            real_path=row.real_path,
            shadow_id=row.shadow_order_id,
            shadow_path=row.shadow_path,
            real=sides.observe(row.order_id, placed.get(row.order_id, row.created_at)),
            shadow=sides.observe(row.shadow_order_id, row.created_at),
        )
        for row in mirrored
    ]


class _Sides:
    """The orders, money and stock of a set of order ids, read in four queries."""

    def __init__(self, session: Session, ids: list[str]) -> None:
        self.orders = {
            row.order_id: row
            for row in session.execute(
                select(
                    OrderRow.order_id, OrderRow.status, OrderRow.failure_reason, OrderRow.updated_at
                ).where(OrderRow.order_id.in_(ids))
            )
        }
        self.charged = self._sums(session, ChargeRow, ids)
        self.refunded = self._sums(session, RefundRow, ids)
        self.held: defaultdict[str, list[str]] = defaultdict(list)
        for order_id, sku, quantity in session.execute(
            select(ReservationRow.order_id, ReservationRow.sku, ReservationRow.quantity).where(
                ReservationRow.order_id.in_(ids), ReservationRow.status == "committed"
            )
        ):
            self.held[order_id].append(f"{sku} x{quantity}")
        unrecorded = [order_id for order_id in ids if order_id not in self.orders]
        self.dead = {
            subject: (error, created_at)
            for subject, error, created_at in session.execute(
                select(DeadLetter.subject, DeadLetter.error, DeadLetter.created_at)
                .where(DeadLetter.subject.in_(unrecorded))
                .order_by(DeadLetter.id.desc())  # the first dead letter wins
            )
        }

    @staticmethod
    def _sums(session: Session, table: type, ids: Iterable[str]) -> dict[str, Decimal]:
        column = table.amount  # type: ignore[attr-defined]
        order_id = table.order_id  # type: ignore[attr-defined]
        statement = select(order_id, func.sum(column)).where(order_id.in_(ids)).group_by(order_id)
        return {oid: Decimal(total) for oid, total in session.execute(statement)}

    def observe(self, order_id: str, accepted_at: datetime) -> Observation:
        row = self.orders.get(order_id)
        if row is None and order_id in self.dead:
            error, at = self.dead[order_id]
            latency = (at - accepted_at).total_seconds() * 1000
            return Observation(
                outcome="failed", reason=reason_category(error), latency_ms=round(latency, 1)
            )
        if row is None or row.status not in TERMINAL:
            return Observation(outcome="pending")
        failed = row.status == "failed"
        latency = (row.updated_at - accepted_at).total_seconds() * 1000
        return Observation(
            outcome=row.status,
            reason=reason_category(row.failure_reason) if failed else None,
            amount_charged=self.charged.get(order_id, ZERO) - self.refunded.get(order_id, ZERO),
            items_reserved=tuple(sorted(self.held[order_id])),
            latency_ms=round(max(latency, 0.0), 1),
        )

"""The reconciliation report's tables: one row per run, one per finding (own component
``include.payments.reconciliation``, own migrations and version table)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from include.payments.tables import MONEY
from segue.migrations import Component
from segue.store.engine import new_metadata, utcnow


class ReconciliationBase(DeclarativeBase):
    """Declarative base of the reconciliation report (its own migration component)."""

    metadata = new_metadata()


class ReconciliationRunRow(ReconciliationBase):
    """One reconciliation of a window: what it checked, what it found, when it finished."""

    __tablename__ = "reconciliation_runs"

    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # running, completed
    charges_checked: Mapped[int] = mapped_column(Integer, default=0)
    orders_checked: Mapped[int] = mapped_column(Integer, default=0)
    refunds_made: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReconciliationFindingRow(ReconciliationBase):
    """One disagreement between the gateway's ledger and our store, and what was done about it."""

    __tablename__ = "reconciliation_findings"
    __table_args__ = (UniqueConstraint("run_id", "finding_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250), index=True)
    finding_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(16))  # refunded, flagged
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    gateway_charge_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway_amount: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    store_amount: Mapped[Decimal | None] = mapped_column(MONEY, nullable=True)
    refund_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


COMPONENT = Component(
    name="include.payments.reconciliation",
    metadata=ReconciliationBase.metadata,
    script_location=Path(__file__).with_name("migrations") / "reconciliation",
    version_table="alembic_version_payment_reconciliation",
)

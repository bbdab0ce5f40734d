"""Business-store tables of the payment domain (SQLAlchemy 2; PostgreSQL and SQLite).

Every side effect has a unique key, so a step that runs twice writes once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from segue.migrations import Component
from segue.store.engine import new_metadata, utcnow

MONEY = Numeric(12, 2, asdecimal=True)


class PaymentsBase(DeclarativeBase):
    """Declarative base of the payment domain's tables (component ``include.payments``)."""

    metadata = new_metadata()


def timestamp() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow)


class OrderRow(PaymentsBase):
    """One order and how far it got. ``status`` only moves forward (see steps.advance_status)."""

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    customer_email: Mapped[str] = mapped_column(String(320))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class OrderPlacementRow(PaymentsBase):
    """What the event path's intake accepted under an order id (one row per id, kept)."""

    __tablename__ = "order_placements"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The API client whose key placed the order (NULL only for rows placed before keys).
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = timestamp()


class ApiClientRow(PaymentsBase):
    """A client of the order intake and the sha256 of its API key (the key itself is never kept).

    ``revoked_at`` set means the key no longer opens the door; the row stays, so the name is
    not reused and placements keep naming a client that existed.
    """

    __tablename__ = "api_clients"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = timestamp()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StockRow(PaymentsBase):
    """The catalog and its available stock; ``available`` never goes negative."""

    __tablename__ = "stock"
    __table_args__ = (CheckConstraint("available >= 0", name="available_not_negative"),)

    sku: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    available: Mapped[int] = mapped_column(Integer)


class ReservationRow(PaymentsBase):
    """Stock held for an order: reserved, then committed (shipped) or released (compensated)."""

    __tablename__ = "reservations"
    __table_args__ = (UniqueConstraint("order_id", "sku"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    sku: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = timestamp()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class ChargeRow(PaymentsBase):
    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    gateway_charge_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = timestamp()


class RefundRow(PaymentsBase):
    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    gateway_refund_id: Mapped[str] = mapped_column(String(64), unique=True)
    gateway_charge_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    created_at: Mapped[datetime] = timestamp()


class ReceiptRow(PaymentsBase):
    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = timestamp()


class ReceiptCancellationRow(PaymentsBase):
    """The notice that cancels a receipt already sent (the receipt's compensation)."""

    __tablename__ = "receipt_cancellations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = timestamp()


class ShippingNoticeRow(PaymentsBase):
    __tablename__ = "shipping_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = timestamp()


COMPONENT = Component(
    name="include.payments",
    metadata=PaymentsBase.metadata,
    script_location=Path(__file__).with_name("migrations") / "store",
    version_table="alembic_version_payments",
    legacy_tables=(
        "orders",
        "order_placements",
        "stock",
        "reservations",
        "charges",
        "refunds",
        "receipts",
        "receipt_cancellations",
        "shipping_notices",
    ),
)

"""The bus's tables (``inbox``, ``outbox``) and their migration component ``segue.bus``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from segue.migrations.component import Component
from segue.store.engine import new_metadata, utcnow


class BusBase(DeclarativeBase):
    """Declarative base of the bus's tables."""

    metadata = new_metadata()


class InboxRow(BusBase):
    """One event id a consumer has handled, with a hash of its content (a later delivery with
    the same hash is a duplicate; with another, a conflict)."""

    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # SHA-256 of the handled event's content (inbox.content_hash); NULL in rows from before it.
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxRow(BusBase):
    """One event waiting for the relay: routing key, AMQP headers, properties and body as sent."""

    __tablename__ = "outbox"

    # Publication order: the relay drains in id order, which keeps each order's events in order.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    routing_key: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


COMPONENT = Component(
    name="segue.bus",
    metadata=BusBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_bus",
    legacy_tables=("inbox", "outbox"),
)

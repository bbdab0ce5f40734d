"""The transactional outbox: events are rows written in the transaction of the effect.

The relay (``segue.bus.relay``) publishes them after the commit and deletes them once the
broker confirmed, so an event is never lost and never published for a rolled-back effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope
from segue.store.engine import Base, utcnow
from segue.store.inserts import insert_if_absent, insert_many_if_absent


class OutboxRow(Base):
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


def add_to_outbox(session: Session, envelope: Envelope) -> bool:
    """Queue ``envelope`` for publication; False when the same event id is already queued."""
    return insert_if_absent(session, OutboxRow.__table__, _row(envelope))


def add_many_to_outbox(session: Session, envelopes: Sequence[Envelope]) -> int:
    """Queue several envelopes with one statement, ids in the given order; how many were new.

    The order matters: the relay publishes by id, so the events of one order keep the order in
    which they were emitted.
    """
    rows = [_row(envelope) for envelope in envelopes]
    return len(
        insert_many_if_absent(session, OutboxRow.__table__, rows, key="event_id", ordered=True)
    )


def _row(envelope: Envelope) -> dict[str, Any]:
    message = to_amqp(envelope)
    return {
        "event_id": envelope.id,
        "source": envelope.source,
        "routing_key": message.routing_key,
        "subject": envelope.subject,
        "headers": message.headers,
        "properties": message.properties,
        "body": message.body,
        "created_at": utcnow(),
    }

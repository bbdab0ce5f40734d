"""The ``event_log`` table: one row per event id, whatever service saw it first.

Rows keep the CloudEvents attributes as columns (for queries) and the AMQP headers and JSON
payload as sent, so an event can be rebuilt and republished exactly (``segue.eventlog.replay``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Engine, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope
from segue.migrations.cache import migrated
from segue.migrations.component import Component
from segue.store.engine import new_metadata, shared_engine, utcnow
from segue.store.inserts import insert_if_absent, insert_many_if_absent


class EventLogBase(DeclarativeBase):
    """Declarative base of ``event_log`` (component ``segue.eventlog``)."""

    metadata = new_metadata()


class EventLogRecord(EventLogBase):
    """One event as it travelled: attributes, AMQP headers and payload."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(200), index=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    correlation_id: Mapped[str] = mapped_column(String(200), index=True)
    causation_id: Mapped[str | None] = mapped_column(String(200))
    traceparent: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    @property
    def short_type(self) -> str:
        """The event type's last dotted part (``...order.placed`` gives ``placed``)."""
        return self.type.rsplit(".", 1)[-1]


TABLE = EventLogRecord.__table__
COMPONENT = Component(
    name="segue.eventlog",
    metadata=EventLogBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_eventlog",
    legacy_tables=("event_log",),
)


def eventlog_engine(url: str) -> Engine:
    """The shared engine of ``url`` with ``segue.eventlog`` migrated (once per process)."""
    return migrated(shared_engine(url), [COMPONENT])


def record_event(session: Session, envelope: Envelope) -> bool:
    """Record ``envelope`` unless its id is already logged; True if this call wrote it."""
    return insert_if_absent(session, TABLE, _values(envelope))  # type: ignore[arg-type]


def record_events(session: Session, envelopes: Sequence[Envelope]) -> int:
    """Record several envelopes with one statement (logged ids skipped); how many were new.

    :param session: where the rows are written; the caller commits.
    :param envelopes: the events to log; an id repeated here is written once.
    """
    rows = [_values(envelope) for envelope in envelopes]
    return len(insert_many_if_absent(session, TABLE, rows, key="event_id"))  # type: ignore[arg-type]


def _values(envelope: Envelope) -> dict[str, Any]:
    return {
        "event_id": envelope.id,
        "type": envelope.type,
        "schema_version": envelope.schemaversion,
        "source": envelope.source,
        "subject": envelope.subject,
        "correlation_id": envelope.correlationid,
        "causation_id": envelope.causationid,
        "traceparent": envelope.traceparent,
        "time": envelope.time,
        "recorded_at": utcnow(),
        "headers": to_amqp(envelope).headers,
        "payload": envelope.data.model_dump(mode="json"),
    }


def timeline(session: Session, correlation_id: str) -> list[EventLogRecord]:
    """The events of one correlation id (an order), by event time then recording time.

    :param session: the session to read with.
    :param correlation_id: the correlation id the events share.
    """
    statement = (
        select(EventLogRecord)
        .where(EventLogRecord.correlation_id == correlation_id)
        .order_by(EventLogRecord.time, EventLogRecord.recorded_at, EventLogRecord.id)
    )
    return list(session.scalars(statement))


def order_timeline(session: Session, order_id: str) -> list[EventLogRecord]:
    """The timeline of ``order_id``: by correlation id, else by subject (the order id)."""
    found = timeline(session, order_id)
    if found:
        return found
    statement = (
        select(EventLogRecord)
        .where(EventLogRecord.subject == order_id)
        .order_by(EventLogRecord.time, EventLogRecord.recorded_at, EventLogRecord.id)
    )
    return list(session.scalars(statement))

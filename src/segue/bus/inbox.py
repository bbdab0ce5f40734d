"""The inbox: one row per (consumer, event id), written in the transaction of the effect.

A duplicate delivery finds its row and is skipped, so every consumer is idempotent whatever
the handler does.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from segue.store.engine import Base, utcnow
from segue.store.inserts import insert_if_absent, insert_many_if_absent


class InboxRow(Base):
    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def claim(session: Session, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False when it already did (a duplicate)."""
    return insert_if_absent(
        session,
        InboxRow.__table__,
        {"consumer": consumer, "event_id": event_id, "received_at": utcnow()},
    )


def claim_many(session: Session, consumer: str, event_ids: Iterable[str]) -> set[str]:
    """Claim several event ids in one statement; the ids claimed now (the rest: duplicates)."""
    now = utcnow()
    rows = [
        {"consumer": consumer, "event_id": event_id, "received_at": now} for event_id in event_ids
    ]
    return insert_many_if_absent(session, InboxRow.__table__, rows, key="event_id")

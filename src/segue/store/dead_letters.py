"""Dead-letter records: work that was abandoned (retries exhausted or a business failure).

Generic over workflows: ``subject`` is the business key (an order id for payments).
One row per (workflow, subject, step), so recording twice keeps the first record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from segue.store.engine import Base, utcnow
from segue.store.inserts import insert_if_absent


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("workflow", "subject", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workflow: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(100), index=True)
    step: Mapped[str] = mapped_column(String(100))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def record_dead_letter(
    session: Session,
    *,
    workflow: str,
    subject: str,
    step: str,
    error: str,
    attempts: int,
    payload: Any,
) -> bool:
    """Record abandoned work; True if this call wrote the row (False: already recorded)."""
    return insert_if_absent(
        session,
        DeadLetter.__table__,
        {
            "workflow": workflow,
            "subject": subject,
            "step": step,
            "error": error[:10_000],
            "attempts": attempts,
            "payload": payload,
            "created_at": utcnow(),
        },
    )


def dead_letters_for(session: Session, subject: str) -> list[DeadLetter]:
    """Every dead-letter record of one subject, oldest first."""
    query = select(DeadLetter).where(DeadLetter.subject == subject).order_by(DeadLetter.id)
    return list(session.scalars(query))

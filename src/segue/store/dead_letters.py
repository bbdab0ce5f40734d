"""Dead-letter records: work that was abandoned (retries exhausted or a business failure).

Generic over workflows: ``subject`` is the business key (an order id for payments).
One row per (workflow, subject, step), so recording twice keeps the first record.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from segue.migrations.component import Component
from segue.store.engine import new_metadata, utcnow
from segue.store.inserts import insert_if_absent


class DeadLetterBase(DeclarativeBase):
    """Declarative base of ``dead_letters`` (component ``segue.dead_letters``)."""

    metadata = new_metadata()


class DeadLetter(DeadLetterBase):
    """One abandoned piece of work: which workflow, subject and step, why, and its payload."""

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


COMPONENT = Component(
    name="segue.dead_letters",
    metadata=DeadLetterBase.metadata,
    script_location=Path(__file__).with_name("migrations"),
    version_table="alembic_version_segue_dead_letters",
    legacy_tables=("dead_letters",),
)


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
    """Record abandoned work; True if this call wrote the row (False: already recorded).

    :param session: where the row is written; the caller commits.
    :param workflow: the name of the workflow that gave up.
    :param subject: the business key (an order id for payments).
    :param step: the step that failed.
    :param error: why; kept to its first 10,000 characters.
    :param attempts: how many attempts were made.
    :param payload: the work's input (JSON-serializable), kept for inspection.
    """
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
    """Every dead-letter record of one subject, oldest first.

    :param session: the session to read with.
    :param subject: the business key (an order id for payments).
    """
    query = select(DeadLetter).where(DeadLetter.subject == subject).order_by(DeadLetter.id)
    return list(session.scalars(query))

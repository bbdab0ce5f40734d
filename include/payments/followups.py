"""What the payments team does with charge replies that reach Airflow over the bus.

- The hybrid DAG settles a ChargeCompleted / ChargeFailed reply: a failure is a business
  failure (the order fails and is dead-lettered, no retry).
- Every ChargeFailed gets one follow-up row: a declined card means asking the customer to update
  it; a rejected request or a missing order needs a person to look. Recording is idempotent on
  the event id, so a redelivered message (at-least-once) writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from include.payments.errors import BusinessFailure
from include.payments.events import ChargeCompleted, ChargeFailed
from segue.migrations import Component
from segue.store.engine import utcnow
from segue.store.inserts import insert_if_absent

UPDATE_CARD = "ask_customer_to_update_card"
INVESTIGATE = "investigate"
NOT_THE_CARD = frozenset({"gateway_rejected", "order_not_found", "order_failed"})


class FollowupBase(DeclarativeBase):
    """Own metadata and migrations (component ``include.payments.followups``): older databases
    may lack the table, which only the bridge's follow-up DAG used to create. No naming
    convention, as when the table was first made (its primary key is PostgreSQL's
    ``payment_followups_pkey``)."""

    metadata = MetaData()


class PaymentFollowup(FollowupBase):
    """One follow-up per failed charge event."""

    __tablename__ = "payment_followups"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChargeReplyFailed(BusinessFailure):
    """The charge service answered ChargeFailed: retrying this task cannot change that."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"charge failed: {code} ({reason})")
        self.code = code


COMPONENT = Component(
    name="include.payments.followups",
    metadata=FollowupBase.metadata,
    script_location=Path(__file__).with_name("migrations") / "followups",
    version_table="alembic_version_payment_followups",
    legacy_tables=("payment_followups",),
)


def followups_engine(url: str) -> Engine:
    """The business store's engine, migrated (``payment_followups`` included)."""
    from include.payments.database import payments_engine  # late: database lists COMPONENT

    return payments_engine(url)


def settle_charge_reply(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The charge (``data`` of ChargeCompleted), or ChargeReplyFailed for a ChargeFailed."""
    if reply["type"] == ChargeFailed.event_type:
        raise ChargeReplyFailed(reply["data"]["code"], reply["data"]["reason"])
    if reply["type"] != ChargeCompleted.event_type:
        raise ValueError(f"not a charge reply: {reply['type']}")
    return dict(reply["data"])


def action_for(code: str) -> str:
    return INVESTIGATE if code in NOT_THE_CARD else UPDATE_CARD


def record_followups(session: Session, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """One row per ChargeFailed envelope (others are skipped); returns the event ids written."""
    written = []
    for envelope in events:
        if envelope.get("type") != ChargeFailed.event_type:
            continue
        data = ChargeFailed.model_validate(envelope["data"])
        values = {
            "event_id": envelope["id"],
            "order_id": data.order_id,
            "code": data.code,
            "reason": data.reason,
            "action": action_for(data.code),
            "requested_by": data.requested_by,
            "created_at": utcnow(),
        }
        if insert_if_absent(session, PaymentFollowup.__table__, values):
            written.append(envelope["id"])
    return written


def followups_for(session: Session, order_id: str) -> list[PaymentFollowup]:
    query = select(PaymentFollowup).where(PaymentFollowup.order_id == order_id)
    return list(session.scalars(query.order_by(PaymentFollowup.created_at)))

"""The inbox: one row per (consumer, event id), written in the transaction of the effect.

A duplicate delivery finds its row and is skipped, so every consumer is idempotent whatever
the handler does.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from segue.bus.tables import InboxRow
from segue.store.engine import utcnow
from segue.store.inserts import insert_if_absent, insert_many_if_absent

__all__ = ["InboxRow", "claim", "claim_many"]


def claim(session: Session, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handles ``event_id``; False when it already did (a duplicate)."""
    return insert_if_absent(
        session,
        InboxRow.__table__,
        {"consumer": consumer, "event_id": event_id, "received_at": utcnow()},
    )


def claim_many(session: Session, consumer: str, event_ids: Iterable[str]) -> set[str]:
    """Claim several event ids in one statement; the ids claimed now (the rest: duplicates).

    :param session: the session of the effect; the rows commit or roll back with it.
    :param consumer: the consuming service's name (the inbox key with each event id).
    :param event_ids: the events being handled; an id repeated here is claimed once.
    """
    now = utcnow()
    rows = [
        {"consumer": consumer, "event_id": event_id, "received_at": now} for event_id in event_ids
    ]
    return insert_many_if_absent(session, InboxRow.__table__, rows, key="event_id")

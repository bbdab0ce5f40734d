"""The inbox: one row per (consumer, event id), written in the transaction of the effect.

A duplicate delivery finds its row and is skipped, so every consumer is idempotent whatever
the handler does. Each row also holds a hash of the event's content (type, subject and data,
canonical JSON): a later message under a handled id with *other* content is not a duplicate
but a conflict (a producer reused an id), which the consumer parks instead of dropping. Rows
written before the hash existed hold none and match any content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from segue.bus.tables import InboxRow
from segue.events.envelope import Envelope
from segue.store.engine import utcnow
from segue.store.inserts import insert_if_absent, insert_many_if_absent

__all__ = ["InboxRow", "claim", "claim_many", "content_hash", "matches", "stored_hashes"]


def content_hash(envelope: Envelope) -> str:
    """The SHA-256 (hex) of what an event says: its type, subject and data, as canonical JSON.

    Transport details (time, trace context, causation) are left out, so the same event
    republished by an outbox relay or replayed from the event log hashes the same.

    :param envelope: a decoded event.
    """
    content = {
        "type": envelope.type,
        "subject": envelope.subject,
        "data": envelope.data.model_dump(mode="json"),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def matches(stored: str | None, incoming: str) -> bool:
    """True when a delivery under a handled id is a true duplicate of what was handled.

    :param stored: the hash in the inbox row (None: a row from before hashes, taken as matching).
    :param incoming: the hash of the message being handled now.
    """
    return stored is None or stored == incoming


def claim(session: Session, consumer: str, event_id: str, digest: str | None = None) -> bool:
    """Record that ``consumer`` handles ``event_id``; False when it already did (a duplicate).

    :param session: the session of the effect; the row commits or rolls back with it.
    :param consumer: the consuming service's name.
    :param event_id: the event being handled.
    :param digest: its :func:`content_hash`, kept to tell a later conflicting message.
    """
    return insert_if_absent(
        session,
        InboxRow.__table__,
        {
            "consumer": consumer,
            "event_id": event_id,
            "content_hash": digest,
            "received_at": utcnow(),
        },
    )


def claim_many(
    session: Session, consumer: str, events: Iterable[tuple[str, str | None]]
) -> set[str]:
    """Claim several event ids in one statement; the ids claimed now (the rest: duplicates).

    :param session: the session of the effect; the rows commit or roll back with it.
    :param consumer: the consuming service's name (the inbox key with each event id).
    :param events: ``(event id, content hash)`` of the events being handled; an id repeated
        here is claimed once, with the first hash given for it.
    """
    now = utcnow()
    rows = [
        {"consumer": consumer, "event_id": event_id, "content_hash": digest, "received_at": now}
        for event_id, digest in events
    ]
    return insert_many_if_absent(session, InboxRow.__table__, rows, key="event_id")


def stored_hashes(
    session: Session, consumer: str, event_ids: Sequence[str]
) -> dict[str, str | None]:
    """The content hashes the inbox holds for ``event_ids`` (one SELECT; absent ids left out).

    :param session: the session of the effect.
    :param consumer: the consuming service's name.
    :param event_ids: handled event ids to look up (duplicates being checked).
    """
    if not event_ids:
        return {}
    rows = session.execute(
        select(InboxRow.event_id, InboxRow.content_hash).where(
            InboxRow.consumer == consumer, InboxRow.event_id.in_(list(event_ids))
        )
    )
    return {event_id: digest for event_id, digest in rows}

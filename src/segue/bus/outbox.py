"""The transactional outbox: events are rows written in the transaction of the effect.

The relay (``segue.bus.relay``) publishes them after the commit and deletes them once the
broker confirmed, so an event is never lost and never published for a rolled-back effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from segue.bus.tables import OutboxRow
from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope
from segue.store.engine import utcnow
from segue.store.inserts import insert_if_absent, insert_many_if_absent

__all__ = ["OutboxRow", "add_many_to_outbox", "add_to_outbox"]


def add_to_outbox(session: Session, envelope: Envelope) -> bool:
    """Queue ``envelope`` for publication; False when the same event id is already queued."""
    return insert_if_absent(session, OutboxRow.__table__, _row(envelope))


def add_many_to_outbox(session: Session, envelopes: Sequence[Envelope]) -> int:
    """Queue several envelopes with one statement, ids in the given order; how many were new.

    The order matters: the relay publishes by id, so the events of one order keep the order in
    which they were emitted.

    :param session: the session of the effect; the rows commit or roll back with it.
    :param envelopes: the events to publish, in emission order; ids already queued are skipped.
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

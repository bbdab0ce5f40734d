"""Replay: republish logged events, and move parked messages back to their service's queue.

Both go through confirmed, mandatory publishing. Consumers are idempotent (inbox, event ids), so
replaying an event a service already handled is harmless. A parked message is acked only after
its copy is confirmed; on any failure it is requeued, so nothing is lost (it may be duplicated).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from amqp.exceptions import NotFound
from kombu import Connection, Queue
from kombu.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session

from segue.bus.parking import (
    ATTEMPT,
    ORIGINAL_ROUTING_KEY,
    PARKED_AT,
    PARKED_BY,
    PARKED_CODE,
    PARKED_REASON,
    PARKING_HEADERS,
)
from segue.bus.publisher import Publisher
from segue.bus.topology import EVENTS, declare_exchanges, parking_queue_name, queue_name
from segue.eventlog.store import EventLogRecord
from segue.events.amqp import attributes_from_headers, from_amqp, to_amqp
from segue.events.envelope import JSON, Envelope
from segue.events.registry import EventRegistry

# Headers a parked message carries that must not follow it back: why it was parked, the
# delayed-retry count, and what the broker adds when it dead-letters or redelivers.
STRIPPED = frozenset({*PARKING_HEADERS, ATTEMPT, "x-death", "x-delivery-count"})
STRIPPED_PREFIXES = ("x-first-death-", "x-last-death-")
LIST_LIMIT = 20


class QueueMissing(LookupError):
    """The queue to read from or replay into does not exist."""


def envelope_of(record: EventLogRecord, registry: EventRegistry) -> Envelope:
    """Rebuild a logged event through the AMQP binding, so it is validated like a delivery.

    :param record: the logged event.
    :param registry: decodes its payload.
    """
    body = json.dumps(record.payload).encode()
    return from_amqp(body, record.headers, JSON, registry, max_body_bytes=len(body) + 1)


def logged_events(
    session: Session,
    *,
    correlation_id: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
) -> list[EventLogRecord]:
    """Logged events in time order, optionally filtered.

    :param session: an open session on the store.
    :param correlation_id: only this conversation (an order).
    :param event_type: only this type.
    :param since: only events at or after this time.
    """
    statement = select(EventLogRecord).order_by(EventLogRecord.time, EventLogRecord.id)
    if correlation_id is not None:
        statement = statement.where(EventLogRecord.correlation_id == correlation_id)
    if event_type is not None:
        statement = statement.where(EventLogRecord.type == event_type)
    if since is not None:
        statement = statement.where(EventLogRecord.time >= since)
    return list(session.scalars(statement))


def replay_from_log(
    session: Session,
    connection: Connection,
    registry: EventRegistry,
    *,
    correlation_id: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    to_service: str | None = None,
) -> int:
    """Republish logged events in time order; to every subscriber, or to one service's queue.

    Returns how many were published (each confirmed). Stops at the first failure.

    :param registry: the workflow's event types; each logged event is re-validated through it.
    """
    records = logged_events(
        session, correlation_id=correlation_id, event_type=event_type, since=since
    )
    publisher = Publisher(connection)
    if to_service is None:
        declare_exchanges(connection)
    else:
        _require_queue(connection, queue_name(to_service))
    for record in records:
        message = to_amqp(envelope_of(record, registry))
        if to_service is None:
            publisher.publish(message, exchange=EVENTS)
        else:  # the default exchange routes by queue name: only this service sees it
            publisher.publish(replace(message, routing_key=queue_name(to_service)), exchange="")
    return len(records)


@dataclass(frozen=True)
class ParkedMessage:
    """What a parked message says about itself (it stays parked)."""

    code: str
    reason: str
    parked_by: str
    parked_at: str
    original_routing_key: str
    event_type: str
    event_id: str
    correlation_id: str
    body_bytes: int


def list_parked(
    connection: Connection, service: str, limit: int = LIST_LIMIT
) -> list[ParkedMessage]:
    """The first ``limit`` parked messages of ``service``, left in the queue.

    They are fetched unacked and then requeued; the broker counts that as a delivery.
    """
    found: list[ParkedMessage] = []
    with _parked_queue(connection, service) as queue:
        held: list[Message] = []
        try:
            while len(held) < limit:
                message = queue.get(no_ack=False)
                if message is None:
                    break
                held.append(message)
                found.append(_describe(message))
        finally:
            for message in held:
                _requeue(connection, message)
    return found


def _describe(message: Message) -> ParkedMessage:
    headers = message.headers or {}
    properties = message.properties
    attributes = attributes_from_headers(headers)

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return ParkedMessage(
        code=text(headers.get(PARKED_CODE)),
        reason=text(headers.get(PARKED_REASON)),
        parked_by=text(headers.get(PARKED_BY)),
        parked_at=text(headers.get(PARKED_AT)),
        original_routing_key=text(headers.get(ORIGINAL_ROUTING_KEY)),
        event_type=text(attributes.get("type") or properties.get("type")),
        event_id=text(attributes.get("id") or properties.get("message_id")),
        correlation_id=text(attributes.get("correlationid") or properties.get("correlation_id")),
        body_bytes=len(message.body or b""),
    )


def replay_parked(
    connection: Connection, service: str, *, limit: int | None = None, dry_run: bool = False
) -> int:
    """Move parked messages of ``service`` back to ``segue.<service>``; returns how many.

    At most the messages parked when the call starts are moved (a message that fails again and
    is re-parked is not looped over). ``dry_run`` only counts them.
    """
    target = queue_name(service)
    with _parked_queue(connection, service) as queue:
        ready = queue.queue_declare(passive=True).message_count
        budget = ready if limit is None else min(limit, ready)
        if dry_run:
            return budget
        _require_queue(connection, target)
        publisher = Publisher(connection)
        moved = 0
        while moved < budget:
            message = queue.get(no_ack=False)
            if message is None:
                break
            try:
                headers, properties = unparked(message)
                publisher.publish_raw(
                    message.body,
                    exchange="",
                    routing_key=target,
                    headers=headers,
                    properties=properties,
                )
            except BaseException:
                _requeue(connection, message)
                raise
            message.ack()
            moved += 1
    return moved


def _requeue(connection: Connection, message: Message) -> None:
    """Give ``message`` back; if its channel is gone, the broker has already requeued it.

    (A nacked publish makes Kombu's retry reconnect, which closes every channel.)
    """
    with suppress(*connection.connection_errors, *connection.channel_errors):
        message.requeue()


def unparked(message: Message) -> tuple[dict[str, Any], dict[str, Any]]:
    """The message's headers without parking and dead-letter headers, and its properties.

    :param message: a message from a parking queue.
    """
    headers = {
        name: value
        for name, value in (message.headers or {}).items()
        if name not in STRIPPED and not name.startswith(STRIPPED_PREFIXES)
    }
    properties = {
        name: value
        for name, value in message.properties.items()
        if name not in ("application_headers", "delivery_info") and value is not None
    }
    properties.setdefault("content_type", message.content_type or "application/octet-stream")
    return headers, properties


@contextmanager
def _parked_queue(connection: Connection, service: str) -> Iterator[Queue]:
    """The parking queue of ``service`` on a channel of its own (closed, unacked requeued)."""
    name = parking_queue_name(service)
    channel = connection.channel()
    try:
        try:
            channel.queue_declare(queue=name, passive=True)
        except NotFound as exc:
            raise QueueMissing(f"queue {name} does not exist (is {service!r} declared?)") from exc
        yield Queue(name, no_declare=True)(channel)
    finally:
        with suppress(Exception):  # a channel the broker already closed (after NotFound)
            channel.close()


def _require_queue(connection: Connection, name: str) -> None:
    channel = connection.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
    except NotFound as exc:
        raise QueueMissing(f"queue {name} does not exist") from exc
    finally:
        with suppress(Exception):
            channel.close()

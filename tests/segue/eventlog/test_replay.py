"""Replay against real RabbitMQ and PostgreSQL: from the event log, and out of parking."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kombu import Connection
from sqlalchemy import Engine

from include.payments.events import PAYMENT_EVENTS
from segue.bus.parking import ATTEMPT, PARKING_HEADERS
from segue.bus.publisher import Publisher, PublishFailed
from segue.bus.topology import DEAD, parking_queue_name, queue_name
from segue.eventlog.replay import QueueMissing, list_parked, replay_from_log, replay_parked
from segue.eventlog.store import record_event
from segue.events.amqp import from_amqp, to_amqp
from segue.events.envelope import Envelope
from segue.store.engine import session_scope

Chain = Callable[..., list[Envelope]]
DEAD_LETTER_HEADERS = {
    "x-death": [{"queue": "segue.x", "reason": "delivery_limit", "count": 1, "exchange": ""}],
    "x-first-death-queue": "segue.x",
    "x-first-death-reason": "delivery_limit",
    "x-first-death-exchange": "",
    "x-delivery-count": 5,
    ATTEMPT: 3,
}


def decoded(messages: list[Any]) -> list[Envelope]:
    return [from_amqp(m.body, m.headers, m.content_type, PAYMENT_EVENTS) for m in messages]


def record_all(engine: Engine, envelopes: list[Envelope]) -> None:
    with session_scope(engine) as session:
        for envelope in envelopes:
            record_event(session, envelope)


def test_replay_from_log_to_one_service_queue(
    log_engine: Engine, connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    chain, other = order_events(), order_events()
    record_all(log_engine, list(reversed(chain)) + other)
    service = make_service()
    with session_scope(log_engine) as session:
        count = replay_from_log(
            session,
            connection,
            PAYMENT_EVENTS,
            correlation_id=chain[0].correlationid,
            to_service=service,
        )
    assert count == 4
    messages = broker.drain(queue_name(service))
    assert decoded(messages) == chain, "the same events, in event-time order"
    assert [m.delivery_info["routing_key"] for m in messages] == [queue_name(service)] * 4
    assert messages[0].properties["message_id"] == chain[0].id


def test_replay_from_log_filters_by_type_and_time(
    log_engine: Engine, connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    chain = order_events()
    record_all(log_engine, chain)
    service = make_service()
    with session_scope(log_engine) as session:
        by_type = replay_from_log(
            session,
            connection,
            PAYMENT_EVENTS,
            correlation_id=chain[0].correlationid,
            event_type=chain[3].type,
            to_service=service,
        )
        since = replay_from_log(
            session,
            connection,
            PAYMENT_EVENTS,
            correlation_id=chain[0].correlationid,
            since=chain[2].time - timedelta(milliseconds=1),
            to_service=service,
        )
    assert (by_type, since) == (1, 2)
    assert [e.id for e in decoded(broker.drain(queue_name(service)))] == [
        chain[3].id,
        chain[2].id,
        chain[3].id,
    ]


def test_replay_from_log_to_the_events_exchange_reaches_subscribers(
    log_engine: Engine, connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    chain = order_events()
    record_all(log_engine, chain)
    service = make_service(routing_keys=sorted({e.type for e in chain}))
    with session_scope(log_engine) as session:
        assert (
            replay_from_log(
                session, connection, PAYMENT_EVENTS, correlation_id=chain[0].correlationid
            )
            == 4
        )
    # other processes may publish payment events too: keep only this order's
    mine = [e for e in decoded(broker.drain(queue_name(service))) if e.subject == chain[0].subject]
    assert sorted(e.id for e in mine) == sorted(e.id for e in chain)


def test_replay_from_log_to_a_missing_service_fails_clearly(
    log_engine: Engine, connection: Connection, order_events: Chain
) -> None:
    record_all(log_engine, order_events())
    with (
        session_scope(log_engine) as session,
        pytest.raises(QueueMissing, match=r"segue\.nope-123 does not exist"),
    ):
        replay_from_log(session, connection, PAYMENT_EVENTS, to_service="nope-123")


def park(
    connection: Connection, service: str, envelopes: list[Envelope], code: str = "boom"
) -> None:
    """Put events into ``segue.<service>.parked`` the way the runtime and the broker do."""
    publisher = Publisher(connection)
    for index, envelope in enumerate(envelopes):
        message = to_amqp(envelope)
        headers = {
            **message.headers,
            **DEAD_LETTER_HEADERS,
            "x-custom": "kept",
            "x-segue-parked-code": code,
            "x-segue-parked-reason": f"reason {index}",
            "x-segue-parked-by": service,
            "x-segue-parked-at": "2026-11-03T09:30:00+00:00",
            "x-segue-original-routing-key": envelope.type,
        }
        publisher.publish_raw(
            message.body,
            exchange=DEAD,
            routing_key=queue_name(service),
            headers=headers,
            properties=message.properties,
        )


def test_replay_parked_moves_every_message_back_and_strips_parking_headers(
    connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    service = make_service()
    chain = order_events()
    park(connection, service, chain)
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4
    assert replay_parked(connection, service, dry_run=True) == 4
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4, "a dry run moves nothing"

    assert replay_parked(connection, service) == 4
    assert broker.wait_backlog(parking_queue_name(service), 0) == 0
    messages = broker.drain(queue_name(service))
    assert decoded(messages) == chain, "bodies and attributes intact, order kept"
    for message, envelope in zip(messages, chain, strict=True):
        headers = dict(message.headers)
        # the quorum queue stamps its own delivery count on every delivery; ours (5) is gone
        assert headers.pop("x-delivery-count") == 0
        assert not set(headers) & {*PARKING_HEADERS, *DEAD_LETTER_HEADERS}, sorted(headers)
        assert not [name for name in headers if name.startswith("x-first-death-")]
        assert headers["x-custom"] == "kept"
        assert headers == {**to_amqp(envelope).headers, "x-custom": "kept"}
        assert message.content_type == "application/json"
        assert message.properties["message_id"] == envelope.id
        assert message.properties["delivery_mode"] == 2


def test_replay_parked_respects_limit(
    connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    service = make_service()
    park(connection, service, order_events())
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4
    assert replay_parked(connection, service, limit=3) == 3
    assert broker.wait_backlog(parking_queue_name(service), 1) == 1
    assert broker.wait_backlog(queue_name(service), 3) == 3
    assert replay_parked(connection, service, limit=3) == 1
    assert replay_parked(connection, service) == 0


def test_parked_message_is_not_lost_when_republish_is_refused(
    connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    """The service queue fills up (reject-publish): the broker nacks, the message stays parked.

    A quorum queue takes about ``max_length`` + 1 messages before it refuses, so some may move
    first; every event is afterwards in exactly one of the two queues, once.
    """
    service = make_service(max_length=1)
    chain = order_events()
    Publisher(connection).publish_raw(b"filler", exchange="", routing_key=queue_name(service))
    park(connection, service, chain)
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4
    with pytest.raises(PublishFailed):
        replay_parked(connection, service)
    parked = list_parked(connection, service, limit=10)
    assert 1 <= len(parked) < 4
    assert {p.code for p in parked} == {"boom"}, "parking headers are still there"
    assert broker.wait_backlog(parking_queue_name(service), len(parked)) == len(parked)
    moved = [m for m in broker.drain(queue_name(service)) if m.body != b"filler"]
    assert len(moved) == 4 - len(parked)
    ids = [p.event_id for p in parked] + [e.id for e in decoded(moved)]
    assert sorted(ids) == sorted(e.id for e in chain), "each event once, none lost"


def test_parked_message_is_not_lost_when_the_service_queue_is_missing(
    connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    service = make_service()
    park(connection, service, order_events()[:2])
    connection.default_channel.queue_delete(queue_name(service))
    assert broker.wait_backlog(parking_queue_name(service), 2) == 2
    with pytest.raises(QueueMissing, match=re.escape(queue_name(service))):
        replay_parked(connection, service)
    assert broker.wait_backlog(parking_queue_name(service), 2) == 2


def test_list_parked_shows_reasons_and_keeps_the_messages(
    connection: Connection, make_service: Any, broker: Any, order_events: Chain
) -> None:
    service = make_service()
    chain = order_events()
    park(connection, service, chain, code="invalid_payload")
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4
    first_two = list_parked(connection, service, limit=2)
    assert len(first_two) == 2
    everything = list_parked(connection, service, limit=50)
    assert broker.wait_backlog(parking_queue_name(service), 4) == 4
    assert sorted(p.event_id for p in everything) == sorted(e.id for e in chain)
    by_id = {p.event_id: p for p in everything}
    for index, envelope in enumerate(chain):
        shown = by_id[envelope.id]
        assert (shown.code, shown.reason) == ("invalid_payload", f"reason {index}")
        assert shown.parked_by == service and shown.event_type == envelope.type
        assert shown.original_routing_key == envelope.type
        assert shown.correlation_id == envelope.correlationid
        assert shown.body_bytes == len(to_amqp(envelope).body)


def test_parked_of_an_unknown_service_fails_clearly(connection: Connection) -> None:
    with pytest.raises(QueueMissing, match=r"segue\.ghost-1\.parked does not exist"):
        list_parked(connection, "ghost-1")
    with pytest.raises(QueueMissing):
        replay_parked(connection, "ghost-1")

"""The outbox relay against real RabbitMQ and PostgreSQL: order, confirms, circuit breaker."""

from __future__ import annotations

import threading
import time

import pytest
from kombu import Connection
from sqlalchemy import Engine, func, select

from include.payments.events import ReceiptSent
from segue.bus.connection import connect
from segue.bus.outbox import OutboxRow, add_to_outbox
from segue.bus.publisher import Publisher, PublishFailed
from segue.bus.relay import BacklogBreaker, OutboxRelay
from segue.bus.topology import backlog, declare_service, queue_name, service_queues
from segue.events.amqp import AmqpMessage
from segue.events.envelope import Envelope
from segue.store.engine import session_scope
from tests.segue.bus.conftest import take_all

SINK = "sink"


def queue_events(engine: Engine, count: int) -> list[str]:
    ids = []
    with session_scope(engine) as session:
        for index in range(count):
            payload = ReceiptSent(order_id=f"o-{index}", email="a@example.com")
            envelope = Envelope.create(payload, source="src", subject=f"o-{index}")
            add_to_outbox(session, envelope)
            ids.append(envelope.id)
    return ids


def pending(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxRow)) or 0)


def test_the_relay_publishes_in_order_and_empties_the_outbox(
    broker: Connection, clean_db: Engine
) -> None:
    declare_service(broker, service_queues(SINK, [ReceiptSent.event_type]))
    ids = queue_events(clean_db, 12)
    relay = OutboxRelay(clean_db, broker, source="src", batch_size=5)

    while relay.drain_once():
        pass

    delivered = take_all(broker, queue_name(SINK))
    assert [message.headers["cloudEvents_id"] for message in delivered] == ids
    assert pending(clean_db) == 0


def test_replicas_relays_of_one_source_publish_each_row_once_in_id_order(
    broker: Connection, clean_db: Engine, fresh_amqp_url: str
) -> None:
    """Replicas of a service each run a relay over the same source's outbox: one drains at a
    time (the advisory lock), so nothing is published twice and no order's events overtake.

    Four relays of one row per batch hand the lock over at every row: a relay winning it just
    as another commits used to publish that row again (6 of 10 runs of this test before the
    select locked its rows, 0 of 40 after)."""
    declare_service(broker, service_queues(SINK, [ReceiptSent.event_type]))
    ids = queue_events(clean_db, 200)
    connections = [connect(fresh_amqp_url) for _ in range(4)]
    relays = [OutboxRelay(clean_db, c, source="src", batch_size=1) for c in connections]
    start = threading.Barrier(len(relays))

    def drain(relay: OutboxRelay) -> None:
        start.wait()
        while relay.pending():
            relay.drain_once()

    threads = [threading.Thread(target=drain, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for connection in connections:
        connection.close()

    delivered = take_all(broker, queue_name(SINK))
    assert [message.headers["cloudEvents_id"] for message in delivered] == ids
    assert sum(relay.published for relay in relays) == len(ids)
    assert pending(clean_db) == 0


def test_the_breaker_pauses_publishing_into_a_full_queue_and_resumes_as_it_drains(
    broker: Connection, clean_db: Engine
) -> None:
    declare_service(broker, service_queues(SINK, [ReceiptSent.event_type]))
    queue_events(clean_db, 30)
    breaker = BacklogBreaker(broker, threshold=10, queues_for=lambda key: [queue_name(SINK)])
    relay = OutboxRelay(clean_db, broker, source="src", breaker=breaker, batch_size=5)

    for _ in range(20):
        relay.drain_once()
        time.sleep(0.1)
    assert relay.paused and breaker.open_queue == queue_name(SINK)
    assert 10 < backlog(broker, queue_name(SINK)) <= 15  # one batch past the threshold at most
    assert pending(clean_db) >= 15  # the rest waits in the outbox, not in the broker

    delivered = take_all(broker, queue_name(SINK))  # the consumer catches up
    deadline = time.monotonic() + 20
    while pending(clean_db) and time.monotonic() < deadline:
        relay.drain_once()
        delivered += take_all(broker, queue_name(SINK))
        time.sleep(0.1)
    delivered += take_all(broker, queue_name(SINK))

    assert breaker.open_queue is None and breaker.opened >= 1
    assert len(delivered) == 30


def test_an_unroutable_batch_is_kept_in_the_outbox_and_published_once_a_queue_is_bound(
    broker: Connection, clean_db: Engine
) -> None:
    ids = queue_events(clean_db, 7)
    relay = OutboxRelay(clean_db, broker, source="src", batch_size=5)

    with pytest.raises(PublishFailed, match=r"NO_ROUTE|312"):
        relay.drain_once()  # nobody is bound to ReceiptSent yet: the broker returns them
    assert pending(clean_db) == 7, "rows stay until every message of the batch is confirmed"

    declare_service(broker, service_queues(SINK, [ReceiptSent.event_type]))
    while relay.drain_once():  # the same publisher: a fresh confirm channel, numbering anew
        pass

    delivered = take_all(broker, queue_name(SINK))
    assert [message.headers["cloudEvents_id"] for message in delivered] == ids
    assert pending(clean_db) == 0


def test_publish_many_awaits_every_confirm_over_successive_batches(broker: Connection) -> None:
    declare_service(broker, service_queues(SINK, [ReceiptSent.event_type]))
    publisher = Publisher(broker)
    bodies = []
    for batch in range(4):  # confirm tags keep counting on the same channel across batches
        outgoing = [
            AmqpMessage(ReceiptSent.event_type, f"{batch}-{n}".encode(), {"n": n}, {})
            for n in range(1 + batch * 30)
        ]
        publisher.publish_many(outgoing, confirm_timeout=5)
        bodies += [message.body for message in outgoing]

    delivered = take_all(broker, queue_name(SINK))
    assert [message.body for message in delivered] == bodies
    assert all(message.properties["delivery_mode"] == 2 for message in delivered)

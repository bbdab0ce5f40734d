"""AmqpEventTrigger in ack mode against the real RabbitMQ: nothing is acked before Airflow has
persisted the asset event; unsettled messages come back, undecodable ones are parked."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import time
import uuid
from urllib.parse import unquote

import pytest
from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome, SharedStreamManager
from kombu import Connection

from include.payments.events import ChargeFailed
from segue.airflow.triggers.amqp_watcher import AmqpEventTrigger
from segue.bus.parking import PARKED_CODE
from segue.bus.publisher import Publisher
from segue.bus.topology import declare_service, parking_queue_name, service_queues
from segue.events.envelope import Envelope

KEYS = [ChargeFailed.event_type]


def rebuild(trigger):
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**kwargs), classpath, kwargs


def test_serialized_kwargs_rebuild_the_trigger_and_it_runs_in_ack_mode():
    trigger = AmqpEventTrigger(name="followups", routing_keys=KEYS, prefetch=5)
    rebuilt, classpath, kwargs = rebuild(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert classpath == "segue.airflow.triggers.amqp_watcher.AmqpEventTrigger"
    assert rebuilt.shared_stream_key() == trigger.shared_stream_key()
    assert "create_shared_stream_producer" in AmqpEventTrigger.__dict__  # ack mode
    with pytest.raises(ValueError):
        AmqpEventTrigger(name="Bad Name!", routing_keys=KEYS)


def unacked(amqp_url: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of ``queue``, as the broker counts them."""
    vhost = unquote(amqp_url.rsplit("/", 1)[1])
    columns = ["name", "messages_ready", "messages_unacknowledged"]
    out = subprocess.run(
        ["rabbitmqctl", "--quiet", "list_queues", "-p", vhost, *columns],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"no queue {queue}")


def eventually(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def watcher(monkeypatch, amqp_url):
    """A fresh watcher name with its queues declared, and a publisher of ChargeFailed."""
    monkeypatch.setenv("AIRFLOW_CONN_SEGUE_AMQP", amqp_url)
    name = f"test-{uuid.uuid4().hex[:8]}"
    connection = Connection(amqp_url)
    declare_service(connection, service_queues(f"airflow.{name}", KEYS))
    publisher = Publisher(connection)

    def publish(order_id: str) -> Envelope:
        payload = ChargeFailed(order_id=order_id, code="card_declined", reason="declined")
        envelope = Envelope.create(payload, source="charge", subject=order_id)
        publisher.publish_event(envelope)
        return envelope

    yield name, f"segue.airflow.{name}", publish, publisher
    connection.release()


def producer_for(name: str):
    trigger = AmqpEventTrigger(name=name, routing_keys=KEYS, poll_seconds=0.2)
    return AmqpEventTrigger.create_shared_stream_producer(trigger.serialize()[1])


def test_only_advanced_messages_are_acked_the_rest_come_back(watcher, amqp_url):
    name, queue, publish, _ = watcher
    first, second = publish("ord-1"), publish("ord-2")

    async def scenario():
        producer = producer_for(name)
        stream = producer.open_stream()
        (raw1, delivery1), (raw2, _) = [await anext(stream) for _ in range(2)]
        assert [raw1["envelope"]["id"], raw2["envelope"]["id"]] == [first.id, second.id]
        # handed over, nothing settled yet (the broker's counters lag a little)
        assert eventually(lambda: unacked(amqp_url, queue) == (0, 2))
        await producer.advance([AdvanceItem(delivery1, AdvanceOutcome(acked=1, failed=0))])
        await stream.aclose()
        await producer.aclose()  # like a triggerer that stops before the second is persisted

    asyncio.run(scenario())
    assert eventually(lambda: unacked(amqp_url, queue) == (1, 0))

    async def redelivered():
        producer = producer_for(name)
        raw, delivery = await anext(producer.open_stream())
        await producer.aclose()
        return raw, delivery

    raw, delivery = asyncio.run(redelivered())
    assert raw["envelope"]["id"] == second.id and delivery.message.delivery_info["redelivered"]


def test_failed_events_are_requeued_and_rejected_ones_parked_with_the_reason(watcher, amqp_url):
    name, queue, publish, publisher = watcher
    publish("ord-failed")
    publisher.publish_raw(b"not json", exchange="segue.events", routing_key=KEYS[0])

    async def scenario():
        producer = producer_for(name)
        stream = producer.open_stream()
        (_, kept), (raw, poison) = [await anext(stream) for _ in range(2)]
        assert raw == {"invalid": {"code": "wrong_content_type", "detail": poison.invalid.detail}}
        await producer.advance(
            [
                AdvanceItem(kept, AdvanceOutcome(acked=0, failed=1)),
                AdvanceItem(poison, AdvanceOutcome(acked=0, failed=0, rejected=1)),
            ]
        )
        await producer.aclose()

    asyncio.run(scenario())
    parked_queue = parking_queue_name(f"airflow.{name}")
    assert eventually(lambda: unacked(amqp_url, queue) == (1, 0))
    assert eventually(lambda: unacked(amqp_url, parked_queue) == (1, 0))
    with Connection(amqp_url) as connection:
        channel = connection.default_channel
        parked = channel.message_to_python(channel.basic_get(queue=parked_queue, no_ack=True))
    assert parked.body == b"not json" and parked.headers[PARKED_CODE] == "wrong_content_type"


def test_the_triggerer_acks_only_after_the_asset_event_is_persisted(watcher, amqp_url):
    """Airflow's SharedStreamManager in ack mode, driven as the triggerer drives it: a first
    triggerer stops before the persist confirmation (the message comes back), a second one
    gets the confirmation (the message is acked and gone)."""
    name, queue, publish, _ = watcher
    sent = publish("ord-persist")

    async def one_triggerer(confirm: bool) -> str:
        manager = SharedStreamManager(ack_timeout=60)
        trigger = AmqpEventTrigger(name=name, routing_keys=KEYS, poll_seconds=0.2)
        key = trigger.shared_stream_key()
        stream = manager.subscribe(trigger_id=1, trigger=trigger, key=key)
        events = trigger.filter_shared_stream(stream)
        event = await asyncio.wait_for(anext(events), 15)
        seq = manager.bind_pending_event(trigger_id=1, key=key)  # as the runner does
        assert seq is not None
        moving_on = asyncio.create_task(anext(events))  # the filter pulls the next message
        await asyncio.sleep(0.5)
        if confirm:
            manager.confirm_persisted([seq])  # the supervisor stored the asset event
            await asyncio.sleep(1.0)  # the advance pump acks
        moving_on.cancel()
        await manager.unsubscribe(1, key)
        return event.payload["id"]

    def ready() -> int:
        with Connection(amqp_url) as connection:
            return connection.default_channel.queue_declare(queue=queue, passive=True)[1]

    assert asyncio.run(one_triggerer(confirm=False)) == sent.id
    assert eventually(lambda: ready() == 1)  # never acked: back in the queue
    assert asyncio.run(one_triggerer(confirm=True)) == sent.id  # redelivered, same event
    time.sleep(1.0)
    assert ready() == 0
    assert eventually(lambda: unacked(amqp_url, queue) == (0, 0))

"""AmqpHook against the real RabbitMQ: connection params, reply queues, matching and acking."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal

import pytest
from airflow.sdk import Connection
from kombu import Connection as KombuConnection
from kombu import Queue

from include.payments.events import (
    PAYMENT_EVENTS,
    ChargeCompleted,
    ChargeFailed,
    ChargeRequested,
)
from segue.airflow.hooks.amqp import (
    AmqpHook,
    AmqpParams,
    envelope_from_json,
    envelope_to_json,
    reply_queue_name,
)
from segue.bus.publisher import Publisher
from segue.bus.topology import EVENTS, declare_exchanges
from segue.events.amqp import AmqpMessage, to_amqp
from segue.events.envelope import Envelope

REPLIES = [ChargeCompleted.event_type, ChargeFailed.event_type]


def completed(order_id: str, caused_by: Envelope | None = None) -> Envelope:
    payload = ChargeCompleted(
        order_id=order_id, gateway_charge_id="ch_1", amount=Decimal("9.99"), currency="USD"
    )
    return Envelope.create(payload, source="charge", subject=order_id, caused_by=caused_by)


def failed(order_id: str) -> Envelope:
    payload = ChargeFailed(order_id=order_id, code="card_declined", reason="declined")
    return Envelope.create(payload, source="charge", subject=order_id)


@pytest.fixture
def hook(amqp_url):
    """A hook, with a sink queue so that requests (no charge service here) are routable."""
    with AmqpHook(params=AmqpParams(url=amqp_url)) as hook:
        declare_exchanges(hook.get_conn())
        sink = Queue(f"test.sink.{uuid.uuid4().hex[:8]}", EVENTS, routing_key="#", exclusive=True)
        sink(hook.get_conn().default_channel).declare()
        yield hook


def eventually(check, timeout: float = 5.0) -> bool:
    """RabbitMQ's queue counters lag behind acks and rejects by a moment."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def put_into(hook: AmqpHook, queue: str, message: AmqpMessage) -> None:
    """Publish straight into ``queue`` (the default exchange), bypassing the bindings."""
    Publisher(hook.get_conn()).publish_raw(
        message.body,
        exchange="",
        routing_key=queue,
        headers=message.headers,
        properties=message.properties,
    )


@pytest.fixture
def order_id() -> str:
    return f"ord-{uuid.uuid4().hex[:12]}"


def test_params_come_from_the_airflow_connection():
    conn = Connection(
        conn_id="x",
        conn_type="amqp",
        host="rabbit.internal",
        port=5671,
        login="svc",
        password="p@ss/word",
        schema="payments/prod",
        extra=json.dumps({"heartbeat": 3, "ssl": True, "max_retries": 2, "connect_timeout": 1}),
    )
    params = AmqpParams.from_connection(conn)
    assert params == AmqpParams(
        url="amqp://svc:p%40ss%2Fword@rabbit.internal:5671/payments%2Fprod?ssl=1",
        heartbeat=3.0,
        connect_timeout=1.0,
        max_retries=2,
    )
    assert KombuConnection(params.url).virtual_host == "payments/prod"


def test_the_env_connection_resolves_sync_and_async(monkeypatch, amqp_url):
    monkeypatch.setenv("AIRFLOW_CONN_SEGUE_AMQP", amqp_url + "?heartbeat=4")
    sync = AmqpHook().connection_params()
    assert sync["url"] == amqp_url and sync["heartbeat"] == 4.0
    assert asyncio.run(AmqpHook.aconnection_params()) == AmqpParams(**sync)
    with AmqpHook() as hook:
        assert hook.get_conn().connected


def test_reply_queue_gets_its_correlation_ids_awaited_types_only(hook, order_id):
    name = hook.declare_reply_queue(order_id, REPLIES)
    assert name == hook.declare_reply_queue(order_id, list(reversed(REPLIES)))  # idempotent
    assert name == reply_queue_name(order_id, REPLIES) and name.startswith("segue.bridge.")
    request = Envelope.create(ChargeRequested(order_id=order_id), source="t", subject=order_id)
    other = failed(f"{order_id}-other")
    hook.declare_reply_queue(other.correlationid, REPLIES)
    for envelope in (request, other, completed(order_id)):
        hook.publish_event(envelope)
    found = hook.get_matching_event(name, REPLIES, PAYMENT_EVENTS, timeout=2)
    assert found is not None and found.type == ChargeCompleted.event_type
    assert hook.get_matching_event(name, REPLIES, PAYMENT_EVENTS) is None  # acked: consumed


def test_peek_keeps_the_reply_and_other_types_are_dropped(hook, order_id):
    name = hook.declare_reply_queue(order_id, REPLIES)
    channel = hook.get_conn().default_channel
    stray = Envelope.create(ChargeRequested(order_id=order_id), source="t", subject=order_id)
    put_into(hook, name, to_amqp(stray))  # another type of the same correlation id
    Publisher(hook.get_conn()).publish_raw(b"{", exchange="", routing_key=name)
    hook.publish_event(reply := failed(order_id))
    for _ in range(2):  # a peek leaves it for the next reader (a task retry)
        peeked = hook.get_matching_event(name, REPLIES, PAYMENT_EVENTS, timeout=2, ack=False)
        assert peeked is not None and peeked.id == reply.id
    assert eventually(lambda: channel.queue_declare(queue=name, passive=True).message_count == 1)
    assert envelope_from_json(envelope_to_json(peeked), PAYMENT_EVENTS) == peeked


def test_caused_by_skips_answers_to_other_requests_without_dropping_them(hook, order_id):
    name = hook.declare_reply_queue(order_id, REPLIES)
    first = Envelope.create(ChargeRequested(order_id=order_id), source="t", subject=order_id)
    second = Envelope.create(ChargeRequested(order_id=order_id), source="t", subject=order_id)
    hook.publish_event(old := completed(order_id, caused_by=first))
    hook.publish_event(new := completed(order_id, caused_by=second))
    got = hook.get_matching_event(name, REPLIES, PAYMENT_EVENTS, timeout=2, caused_by=second.id)
    assert got is not None and got.id == new.id
    kept = hook.get_matching_event(name, REPLIES, PAYMENT_EVENTS, caused_by=first.id)
    assert kept is not None and kept.id == old.id


def test_waits_up_to_the_timeout_then_returns_none(hook, order_id):
    name = hook.declare_reply_queue(order_id, REPLIES)
    started = time.monotonic()
    assert hook.get_matching_event(name, REPLIES, PAYMENT_EVENTS, timeout=0.6) is None
    assert 0.5 <= time.monotonic() - started < 3

"""EventSensor and EventArrivedTrigger: serialize round trip, peek-only reads, deferral, timeout."""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, TaskDeferred

from include.payments.events import (
    PAYMENT_EVENTS,
    ChargeCompleted,
    ChargeFailed,
    ChargeRequested,
)
from segue.airflow.hooks.amqp import AmqpHook
from segue.airflow.sensors.amqp import EventSensor
from segue.airflow.triggers.amqp import EventArrivedTrigger
from segue.events.envelope import Envelope

REPLIES = [ChargeCompleted.event_type, ChargeFailed.event_type]


def rebuild(trigger):
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**kwargs), classpath, kwargs


def test_serialized_kwargs_rebuild_the_trigger():
    trigger = EventArrivedTrigger(
        queue="segue.bridge.ord-1.abc",
        event_types=REPLIES,
        correlation_id="ord-1",
        deadline="2026-01-01T00:00:00+00:00",
        caused_by="evt-1",
        amqp_conn_id="other",
        poll_seconds=0.5,
    )
    rebuilt, classpath, kwargs = rebuild(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert classpath == "segue.airflow.triggers.amqp.EventArrivedTrigger"
    assert "password" not in str(kwargs) and kwargs["amqp_conn_id"] == "other"


@pytest.fixture
def env_conn(monkeypatch, amqp_url):
    monkeypatch.setenv("AIRFLOW_CONN_SEGUE_AMQP", amqp_url)
    with AmqpHook() as hook:
        yield hook


def sensor(order_id: str, **kwargs) -> EventSensor:
    return EventSensor(
        task_id="await_charge",
        correlation_id=order_id,
        event_types=REPLIES,
        poll_seconds=0.1,
        timeout=30,
        **kwargs,
    )


def failed(order_id: str, caused_by: Envelope | None = None) -> Envelope:
    payload = ChargeFailed(order_id=order_id, code="card_declined", reason="declined")
    return Envelope.create(payload, source="charge", subject=order_id, caused_by=caused_by)


def test_a_reply_already_there_needs_no_deferral_and_stays_in_the_queue(env_conn):
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    queue = env_conn.declare_reply_queue(order_id, REPLIES)
    env_conn.publish_event(reply := failed(order_id))
    result = sensor(order_id).execute({})
    assert result["id"] == reply.id and result["data"]["code"] == "card_declined"
    again = sensor(order_id).execute({})  # a retry finds the same reply: reads are peeks
    assert again == result
    assert env_conn.get_matching_event(queue, REPLIES, PAYMENT_EVENTS) is not None


def test_defers_then_the_trigger_fires_when_the_reply_arrives(env_conn):
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    request = Envelope.create(ChargeRequested(order_id=order_id), source="t", subject=order_id)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(order_id, caused_by=request.id).execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, EventArrivedTrigger) and trigger.caused_by == request.id
    assert deferred.value.method_name == "execute_complete"
    trigger, _, _ = rebuild(trigger)  # the triggerer runs it from its serialized kwargs

    async def scenario():
        waiting = asyncio.create_task(anext(trigger.run()))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        env_conn.publish_event(failed(order_id))  # an answer to someone else's request
        await asyncio.sleep(0.5)
        assert not waiting.done()
        env_conn.publish_event(reply := failed(order_id, caused_by=request))
        return reply, await asyncio.wait_for(waiting, 10)

    reply, event = asyncio.run(scenario())
    assert event.payload["status"] == "arrived" and event.payload["event"]["id"] == reply.id
    result = sensor(order_id).execute_complete({}, event.payload, started=None)
    assert result["type"] == ChargeFailed.event_type and result["causationid"] == request.id


def test_the_trigger_does_not_block_the_event_loop(env_conn):
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    queue = env_conn.declare_reply_queue(order_id, REPLIES)
    deadline = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    trigger = EventArrivedTrigger(
        queue=queue,
        event_types=REPLIES,
        correlation_id=order_id,
        deadline=deadline,
        poll_seconds=0.2,
    )

    async def scenario():
        ticks = 0
        task = asyncio.create_task(anext(trigger.run()))
        while not task.done():
            await asyncio.sleep(0.05)
            ticks += 1
        return ticks, task.result()

    started = time.monotonic()
    ticks, event = asyncio.run(scenario())
    assert event.payload == {"status": "timeout", "queue": queue}
    assert ticks >= 0.6 * (time.monotonic() - started) / 0.05  # the loop kept turning


def test_a_timeout_fails_with_the_correlation_id_types_and_time_waited():
    started = (datetime.now(UTC) - timedelta(seconds=42)).isoformat()
    with pytest.raises(AirflowSensorTimeout) as error:
        sensor("ord-late").execute_complete({}, {"status": "timeout", "queue": "q"}, started)
    message = str(error.value)
    assert "ord-late" in message and ChargeCompleted.event_type in message
    assert ChargeFailed.event_type in message and "after 42s" in message


def test_poke_mode_works_without_the_triggerer(env_conn):
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    poke_sensor = sensor(order_id, deferrable=False)
    assert poke_sensor.poke({}).is_done is False
    env_conn.publish_event(reply := failed(order_id))
    done = poke_sensor.poke({})
    assert done.is_done and done.xcom_value["id"] == reply.id

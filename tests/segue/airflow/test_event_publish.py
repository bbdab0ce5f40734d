"""PublishEventOperator: validated payload, confirmed publish, stable id, reply queue first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from kombu import Queue

from include.payments.events import PAYMENT_EVENTS, ChargeCompleted, ChargeFailed, ChargeRequested
from segue.airflow.hooks.amqp import AmqpHook, reply_queue_name
from segue.airflow.operators.amqp import PublishEventOperator, stable_event_id
from segue.bus.topology import EVENTS, declare_exchanges
from segue.events.amqp import from_amqp

REPLIES = [ChargeCompleted.event_type, ChargeFailed.event_type]


@dataclass
class FakeTI:
    run_id: str
    dag_id: str = "payment_hybrid"
    task_id: str = "request_charge"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


@pytest.fixture
def requests_queue(monkeypatch, amqp_url):
    """The connection env var, and a queue standing in for the charge service's."""
    monkeypatch.setenv("AIRFLOW_CONN_SEGUE_AMQP", amqp_url)
    with AmqpHook() as hook:
        declare_exchanges(hook.get_conn())
        name = f"test.charge.{uuid.uuid4().hex[:8]}"
        Queue(name, EVENTS, routing_key=ChargeRequested.event_type, exclusive=True)(
            hook.get_conn().default_channel
        ).declare()
        yield hook, name


def operator(order_id: str, **overrides: Any) -> PublishEventOperator:
    arguments: dict[str, Any] = {
        "task_id": "request_charge",
        "event_type": ChargeRequested.event_type,
        "data": {"order_id": order_id},
        "subject": order_id,
        "correlation_id": order_id,
        "await_reply_types": REPLIES,
        **overrides,
    }
    return PublishEventOperator(**arguments)


def received(hook: AmqpHook, queue: str) -> list[Any]:
    channel, envelopes = hook.get_conn().default_channel, []
    while (raw := channel.basic_get(queue=queue, no_ack=True)) is not None:
        message = channel.message_to_python(raw)
        envelopes.append(
            from_amqp(message.body, message.headers, message.content_type, PAYMENT_EVENTS)
        )
    return envelopes


def test_a_retry_publishes_the_same_event_id(requests_queue):
    hook, queue = requests_queue
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    ti = FakeTI(run_id="manual__1")
    first = operator(order_id).execute({"ti": ti})
    ti.try_number = 2
    second = operator(order_id).execute({"ti": ti})
    assert first == second == stable_event_id("payment_hybrid", "manual__1", "request_charge")
    assert ti.xcoms["correlation_id"] == order_id
    envelopes = received(hook, queue)
    assert [e.id for e in envelopes] == [first, first]
    assert envelopes[0].data == ChargeRequested(order_id=order_id)
    assert envelopes[0].correlationid == order_id
    assert envelopes[0].source == "airflow/payment_hybrid"
    other_run = operator(order_id).execute({"ti": FakeTI(run_id="manual__2")})
    assert other_run != first


def test_the_reply_queue_exists_before_the_request_leaves(requests_queue):
    hook, _ = requests_queue
    order_id = f"ord-{uuid.uuid4().hex[:8]}"
    operator(order_id).execute({"ti": FakeTI(run_id="r")})
    name = reply_queue_name(order_id, REPLIES)
    assert hook.get_conn().default_channel.queue_declare(queue=name, passive=True)


def test_an_invalid_payload_fails_the_task_without_publishing(requests_queue):
    hook, queue = requests_queue
    with pytest.raises(AirflowFailException, match="order_id"):
        operator("ord-x", data={"order": "nope"}).execute({"ti": FakeTI(run_id="r")})
    with pytest.raises(AirflowFailException, match="unknown"):
        operator("ord-x", event_type="segue.payments.Nope").execute({"ti": FakeTI(run_id="r")})
    assert received(hook, queue) == []


def test_template_fields():
    assert set(PublishEventOperator.template_fields) == {
        "event_type",
        "subject",
        "correlation_id",
        "data",
    }

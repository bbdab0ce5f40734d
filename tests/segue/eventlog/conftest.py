"""Fixtures of the event-log tests: the log table emptied, a broker connection, a throwaway
service (its three queues deleted afterwards) and a chain of payment events of one order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from kombu import Connection, Queue
from kombu.message import Message
from sqlalchemy import Engine, delete

from include.payments.events import (
    ChargeCompleted,
    InventoryReserved,
    OrderPlaced,
    OrderValidated,
)
from include.payments.models import LineItem, Order
from segue.bus.connection import connect
from segue.bus.topology import (
    backlog,
    declare_service,
    parking_queue_name,
    queue_name,
    retry_queue_name,
    service_queues,
)
from segue.eventlog.store import EventLogRecord
from segue.events.envelope import Envelope
from segue.store.engine import session_scope

T0 = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)


@pytest.fixture
def log_engine(engine: Engine) -> Engine:
    """The test database (``segue.eventlog`` migrated with the rest) with ``event_log`` empty."""
    with session_scope(engine) as session:
        session.execute(delete(EventLogRecord))
    return engine


@pytest.fixture
def connection(amqp_url: str) -> Iterator[Connection]:
    """A connection to this test session's own vhost (see tests/conftest.py)."""
    with connect(amqp_url) as conn:
        yield conn


@pytest.fixture
def make_service(connection: Connection) -> Iterator[Callable[..., str]]:
    """Declares ``segue.test-<random>`` (main, retry, parked queues); all deleted afterwards."""
    names: list[str] = []

    def make(routing_keys: list[str] | None = None, **options: object) -> str:
        name = f"test-{uuid.uuid4().hex[:8]}"
        names.append(name)
        keys = routing_keys if routing_keys is not None else [f"test.{name}"]
        declare_service(connection, service_queues(name, keys, **options))  # type: ignore[arg-type]
        return name

    yield make
    channel = connection.channel()
    for name in names:
        for queue in (queue_name(name), retry_queue_name(name), parking_queue_name(name)):
            channel.queue_delete(queue)
    channel.close()


class Broker:
    """Queue helpers of the tests, on one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def wait_backlog(self, queue: str, expected: int, timeout: float = 5.0) -> int:
        """The ready count of ``queue`` once it is ``expected`` (or the last seen on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            count = backlog(self.connection, queue)
            if count == expected or time.monotonic() > deadline:
                return count
            time.sleep(0.05)

    def drain(self, queue: str, timeout: float = 3.0) -> list[Message]:
        """Every message now in ``queue`` (acked), waiting briefly for stragglers."""
        channel = self.connection.channel()
        bound = Queue(queue, no_declare=True)(channel)
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = bound.get(no_ack=True)
            if message is None:
                if found and backlog(self.connection, queue) == 0:
                    break
                time.sleep(0.05)
                continue
            found.append(message)
        channel.close()
        return found


@pytest.fixture
def broker(connection: Connection) -> Broker:
    return Broker(connection)


@pytest.fixture
def order_events() -> Callable[..., list[Envelope]]:
    return order_chain


ORDER = {
    "customer_email": "ada@example.com",
    "payment_method": "pm_card_visa",
    "card_last4": "4242",
    "card_brand": "visa",
    "amount": "49.99",
    "currency": "USD",
    "items": [{"sku": "SKU-MUG", "quantity": 2}, {"sku": "SKU-TEE", "quantity": 1}],
    "shipping_address": {
        "name": "Ada",
        "line1": "1 Way",
        "city": "London",
        "postal_code": "SW1",
        "country": "GB",
    },
}


def order_chain(order_id: str | None = None) -> list[Envelope]:
    """placed -> validated -> (reserved, charged): four events with fixed times and causes."""
    order_id = order_id or f"ord-{uuid.uuid4().hex[:12]}"
    order = Order.model_validate({"order_id": order_id, **ORDER})
    lines = list(order.items)
    placed = Envelope.create(OrderPlaced(order=order), source="order-api", subject=order_id)
    validated = Envelope.create(
        OrderValidated(order_id=order_id, amount=order.amount, currency="USD", items=lines),
        source="validation",
        subject=order_id,
        caused_by=placed,
    )
    reserved = Envelope.create(
        InventoryReserved(order_id=order_id, lines=[LineItem(sku="SKU-MUG", quantity=2)]),
        source="inventory",
        subject=order_id,
        caused_by=validated,
    )
    charged = Envelope.create(
        ChargeCompleted(
            order_id=order_id, gateway_charge_id="ch_42", amount=Decimal("49.99"), currency="USD"
        ),
        source="charge",
        subject=order_id,
        caused_by=validated,
    )
    offsets = [0.0, 0.120, 0.350, 1.5]
    return [
        envelope.model_copy(update={"time": T0 + timedelta(seconds=seconds)})
        for envelope, seconds in zip([placed, validated, reserved, charged], offsets, strict=True)
    ]

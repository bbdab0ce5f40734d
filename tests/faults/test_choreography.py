"""The choreography end to end on real processes, then under duplicate and reordered delivery.

Every test ends by reading the business tables and the gateway's ledger
(``assert_payment_invariants``): each order terminal, charged once at most, refunded exactly
when it failed after a charge, no stock left reserved.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
from kombu import Connection, Consumer, Queue

from segue.bus.connection import connect
from segue.bus.publisher import Publisher
from segue.bus.topology import EVENTS, queue_name
from tests.faults.conftest import Choreography, OrderFactory, order_mix, raw_order
from tools.chaos.invariants import assert_payment_invariants

DUPLICATE = "x-test-duplicate"


def place_all(choreography: Choreography, order_data: OrderFactory, kinds: dict[str, str]) -> None:
    for order_id, kind in kinds.items():
        choreography.place(raw_order(order_data, order_id, kind))


def test_200_orders_reach_a_terminal_state_with_exact_effects(
    choreography: Choreography, order_data: OrderFactory, gateway_url: str
) -> None:
    kinds = order_mix(order_data, 200)
    place_all(choreography, order_data, kinds)

    statuses = choreography.wait_terminal(list(kinds))

    good = [order_id for order_id, kind in kinds.items() if kind == "good"]
    assert len(good) == 160  # the mix: 1 in 10 declined, 1 in 10 out of stock
    assert [order_id for order_id in good if statuses[order_id] == "completed"] == good
    assert_payment_invariants(choreography.engine, kinds, gateway_url)
    for service in choreography.services.values():
        assert service.alive(), f"{service.name} died:\n{service.log_tail()}"


class DuplicatingTap:
    """Publishes every event on the bus a second time (the copy is marked, and not copied)."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.copies = 0
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._copy_until_stopped()
        except Exception:
            if not self.stopping.is_set():
                raise

    def _copy_until_stopped(self) -> None:
        with connect(self.amqp_url) as connection:
            publisher = Publisher(connection)
            tap = Queue("test.tap", exchange=EVENTS, routing_key="#", exclusive=True)

            def copy(message) -> None:  # type: ignore[no-untyped-def]
                if not (message.headers or {}).get(DUPLICATE):
                    publisher.publish_raw(
                        message.body,
                        exchange=EVENTS,
                        routing_key=message.delivery_info["routing_key"],
                        headers={**message.headers, DUPLICATE: 1},
                        properties={"content_type": message.content_type},
                    )
                    self.copies += 1
                message.ack()

            with Consumer(connection.channel(), [tap], on_message=copy):
                self.ready.set()
                while not self.stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        connection.drain_events(timeout=0.2)

    def __enter__(self) -> DuplicatingTap:
        self.thread.start()
        assert self.ready.wait(10), "the tap did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)


def test_every_event_delivered_twice_has_no_duplicate_effect(
    choreography: Choreography, order_data: OrderFactory, gateway_url: str, fresh_amqp_url: str
) -> None:
    kinds = order_mix(order_data, 40)
    with DuplicatingTap(fresh_amqp_url) as tap:
        place_all(choreography, order_data, kinds)
        choreography.wait_terminal(list(kinds))

    assert tap.copies >= 40 * 5  # at least OrderPlaced .. ShippingNotified for each order
    duplicates = sum(
        service.metrics()["counts"].get("duplicates", 0)
        for service in choreography.services.values()
        if service.name != "intake"
    )
    assert duplicates > 0, "no consumer saw a duplicate: the tap did not work"
    assert_payment_invariants(choreography.engine, kinds, gateway_url)


@pytest.fixture
def bus(fresh_amqp_url: str) -> Iterator[Connection]:
    with connect(fresh_amqp_url) as connection:
        yield connection


def test_events_of_an_order_delivered_out_of_order_end_in_the_right_state(
    choreography: Choreography, order_data: OrderFactory, gateway_url: str, bus: Connection
) -> None:
    """Inventory gets each order's Charge* event before its OrderValidated."""
    inventory = choreography.services["inventory"]
    inventory.stop()
    kinds = order_mix(order_data, 20)
    place_all(choreography, order_data, kinds)
    channel = bus.default_channel
    waiting = queue_name("inventory")
    # Inventory is down: each order's OrderValidated and then its ChargeCompleted/ChargeFailed
    # (the charge service charges even the out-of-stock ones, as nobody failed them yet).
    wait_until_backlog(bus, waiting, at_least=2 * len(kinds))
    held = []
    while (message := channel.basic_get(waiting, no_ack=False)) is not None:
        held.append(message)
    publisher = Publisher(bus)
    for message in reversed(held):  # later events first
        publisher.publish_raw(
            message.body,
            exchange="",
            routing_key=waiting,
            headers=message.headers,
            properties={"content_type": message.content_type},
        )
        channel.basic_ack(message.delivery_tag)

    inventory.restart()
    choreography.wait_terminal(list(kinds))

    assert inventory.metrics()["counts"].get("not_yet", 0) > 0, "nothing arrived out of order"
    assert_payment_invariants(choreography.engine, kinds, gateway_url)


def wait_until_backlog(
    connection: Connection, queue: str, at_least: int, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    depth = 0
    while time.monotonic() < deadline:
        depth = connection.default_channel.queue_declare(queue, passive=True).message_count
        if depth >= at_least:
            return
        time.sleep(0.2)
    raise AssertionError(f"{queue} holds {depth} messages, expected {at_least}")

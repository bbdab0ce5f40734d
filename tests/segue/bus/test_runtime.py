"""The service runtime against real RabbitMQ and PostgreSQL, with a toy service.

Checks the consumer contract every payment service relies on: effects once per event id,
events emitted through the outbox with correlation and causation ids, bad input parked with
its reason while the next message is processed, out-of-order events retried until their turn.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable

from kombu import Connection
from sqlalchemy import Engine, func, select

from include.payments.events import PAYMENT_EVENTS, OrderInvalidated, ReceiptSent
from segue.bus import inbox
from segue.bus.connection import connect
from segue.bus.handlers import HandlerContext, NotYet, ServiceSpec
from segue.bus.outbox import OutboxRow
from segue.bus.parking import PARKED_BY, PARKED_CODE, PARKED_REASON
from segue.bus.publisher import Publisher
from segue.bus.runtime import ServiceRuntime
from segue.bus.topology import EVENTS, parking_queue_name
from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope
from segue.store.engine import session_scope
from tests.polling import wait_for
from tests.segue.bus.conftest import probe_queue, take_all

INPUT = OrderInvalidated.event_type
OUTPUT = ReceiptSent.event_type


def toy_service(seen: list[str], *, not_yet_until: int = 0) -> ServiceSpec:
    """Handles OrderInvalidated by remembering the order and emitting ReceiptSent."""
    refusals: dict[str, int] = {}

    def handle(ctx: HandlerContext, event: OrderInvalidated) -> None:
        count = refusals.get(event.order_id, 0)
        if count < not_yet_until:
            refusals[event.order_id] = count + 1
            raise NotYet("waiting for an earlier event")
        seen.append(event.order_id)
        ctx.emit(ReceiptSent(order_id=event.order_id, email="a@example.com"))

    return ServiceSpec(name="toy", handlers={INPUT: handle}, registry=PAYMENT_EVENTS)


def event(order_id: str) -> Envelope:
    payload = OrderInvalidated(order_id=order_id, field="items", reason="empty")
    return Envelope.create(payload, source="test", subject=order_id, correlation_id=f"c-{order_id}")


def test_emits_through_the_outbox_with_correlation_and_causation(
    run_service: Callable[..., ServiceRuntime], broker: Connection, clean_db: Engine
) -> None:
    seen: list[str] = []
    probe = probe_queue(broker, "probe.receipts", OUTPUT)
    run_service(toy_service(seen))
    cause = event("o-1")
    Publisher(broker).publish_event(cause)

    [message] = wait_for(lambda: take_all(broker, probe.name), what="the emitted event")
    headers = message.headers
    assert headers["cloudEvents_type"] == OUTPUT
    assert headers["cloudEvents_correlationid"] == "c-o-1"
    assert headers["cloudEvents_causationid"] == cause.id
    assert headers["cloudEvents_source"] == "toy"
    assert headers["cloudEvents_traceparent"].split("-")[1] == cause.traceparent.split("-")[1]
    assert seen == ["o-1"]
    with session_scope(clean_db) as session:
        wait_for(lambda: session.scalar(select(func.count()).select_from(OutboxRow)) == 0)


def test_messages_read_while_awaiting_confirms_are_handled_without_waiting_for_more(
    clean_db: Engine, fresh_amqp_url: str
) -> None:
    """A retry or a park awaits its confirm on the consumer's connection, which reads the next
    deliveries into the buffer meanwhile; filling the next batch must not then block 0.2 s."""
    runtime = ServiceRuntime(toy_service([]), engine=clean_db, amqp_url=fresh_amqp_url)
    runtime.health.server.server_close()  # not started: only its _fill is used
    with connect(fresh_amqp_url) as connection:
        for buffer in ([], ["a delivery read during a confirm wait"]):
            started = time.monotonic()
            runtime._fill(connection, buffer)
            waited = time.monotonic() - started
            if buffer:
                assert waited < 0.15, f"waited {waited:.3f} s with a message in hand"
            else:
                assert waited >= 0.19  # nothing in hand: it waits for a message


def test_the_same_event_twice_has_one_effect(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    seen: list[str] = []
    probe = probe_queue(broker, "probe.receipts", OUTPUT)
    runtime = run_service(toy_service(seen))
    duplicate = event("o-2")
    publisher = Publisher(broker)
    for _ in range(3):
        publisher.publish_event(duplicate)
    publisher.publish_event(event("o-3"))

    wait_for(lambda: runtime.counts["handled"] + runtime.counts["duplicates"] == 4)
    assert sorted(seen) == ["o-2", "o-3"]
    assert runtime.counts["duplicates"] == 2
    emitted: list = []
    wait_for(lambda: emitted.extend(take_all(broker, probe.name)) or len(emitted) >= 2)
    time.sleep(0.5)  # a third (duplicate) publication would arrive by now
    emitted.extend(take_all(broker, probe.name))
    assert len(emitted) == 2


def bad_messages() -> dict[str, tuple[bytes, dict, str]]:
    """(body, headers, content type) of one message per kind of bad input."""
    good = to_amqp(event("bad"))
    headers = dict(good.headers)
    body = good.body
    json_type = "application/json"
    without_id = {name: value for name, value in headers.items() if name != "cloudEvents_id"}
    return {
        "bad_json": (b"{not json", headers, json_type),
        "wrong_content_type": (body, headers, "text/plain"),
        "oversized_body": (b" " * (300 * 1024) + body, headers, json_type),
        "missing_attribute": (body, without_id, json_type),
        "unknown_type": (body, {**headers, "cloudEvents_type": "segue.payments.Nope"}, json_type),
        "unsupported_version": (body, {**headers, "cloudEvents_schemaversion": 9}, json_type),
        "invalid_payload": (json.dumps({"order_id": "x"}).encode(), headers, json_type),
    }


def test_bad_input_is_parked_with_its_reason_and_the_next_message_is_processed(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    seen: list[str] = []
    runtime = run_service(toy_service(seen))
    publisher = Publisher(broker)
    cases = bad_messages()
    for body, headers, content_type in cases.values():
        publisher.publish_raw(
            body,
            exchange=EVENTS,
            routing_key=INPUT,
            headers=headers,
            properties={"content_type": content_type},
        )
        publisher.publish_event(event(f"good-{uuid.uuid4().hex[:6]}"))

    wait_for(lambda: len(seen) == len(cases), what="every good message")
    parked = wait_for(
        lambda: (found := take_all(broker, parking_queue_name("toy"))) and found, what="parked"
    )
    assert sorted(m.headers[PARKED_CODE] for m in parked) == sorted(cases)
    for message in parked:
        assert message.headers[PARKED_BY] == "toy"
        assert message.headers[PARKED_REASON]
        assert message.body == cases[message.headers[PARKED_CODE]][0]  # kept as it came
    assert runtime.counts["parked"] == len(cases)
    assert runtime.live()


def test_an_event_before_its_turn_is_retried_until_it_can_be_handled(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    seen: list[str] = []
    runtime = run_service(toy_service(seen, not_yet_until=2))
    Publisher(broker).publish_event(event("early"))

    wait_for(lambda: seen == ["early"], timeout=30, what="the retried event")
    # The handler appends before its transaction commits; the count follows the commit.
    wait_for(lambda: runtime.counts["handled"] == 1, what="the handled count")
    # The toy counts calls, not deliveries: a delivery whose handler raised runs it twice (the
    # batch is redone with savepoints), so two refusals may take one or two delayed retries.
    assert 1 <= runtime.counts["not_yet"] <= 2
    assert runtime.counts["handled"] == 1


def test_a_handler_that_keeps_failing_parks_the_message_after_bounded_retries(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    def broken(ctx: HandlerContext, event: OrderInvalidated) -> None:
        raise RuntimeError("bug in the handler")

    spec = ServiceSpec(name="toy", handlers={INPUT: broken}, registry=PAYMENT_EVENTS)
    runtime = run_service(spec)
    Publisher(broker).publish_event(event("doomed"))

    [parked] = wait_for(lambda: take_all(broker, parking_queue_name("toy")), timeout=30)
    assert parked.headers[PARKED_CODE] == "retries_exhausted"
    assert "bug in the handler" in parked.headers[PARKED_REASON]
    assert runtime.counts["retried"] == 5


def test_a_handled_batch_is_acked_so_a_restart_gets_nothing_back(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    seen: list[str] = []
    first = run_service(toy_service(seen))
    publisher = Publisher(broker)
    for n in range(40):
        publisher.publish_event(event(f"o-{n}"))
    wait_for(lambda: first.counts["handled"] == 40, what="40 events handled")
    first.stop()  # closes its channel: anything not acked would be delivered again

    second = run_service(toy_service(seen))
    time.sleep(2)
    assert second.counts["handled"] + second.counts["duplicates"] == 0
    assert sorted(seen) == sorted(f"o-{n}" for n in range(40))


def test_an_event_id_reused_with_another_body_is_parked_not_dropped(
    run_service: Callable[..., ServiceRuntime], broker: Connection
) -> None:
    """Issue 9: the second message under a handled id carried another order; it was dropped."""
    seen: list[str] = []
    probe_queue(broker, "probe.receipts", OUTPUT)
    runtime = run_service(toy_service(seen))
    publisher = Publisher(broker)
    first = event("o-first")
    publisher.publish_event(first)
    wait_for(lambda: seen == ["o-first"], what="the first event handled")

    other = first.model_copy(
        update={"data": OrderInvalidated(order_id="o-other", field="items", reason="empty")}
    )
    publisher.publish_event(first)  # a true duplicate: absorbed as before
    publisher.publish_event(other)  # the same id, another order: must not vanish

    [parked] = wait_for(lambda: take_all(broker, parking_queue_name("toy")), what="parked")
    assert parked.headers[PARKED_CODE] == "conflicting_duplicate"
    reason = parked.headers[PARKED_REASON]
    assert inbox.content_hash(first) in reason
    assert inbox.content_hash(other) in reason
    assert inbox.content_hash(first) != inbox.content_hash(other)
    assert json.loads(parked.body)["order_id"] == "o-other"  # the order it carried, kept
    wait_for(lambda: runtime.counts["duplicates"] == 1, what="the true duplicate absorbed")
    assert seen == ["o-first"]
    assert runtime.counts["conflicting_duplicates"] == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{runtime.health.port}/metrics") as answer:
        metrics = json.load(answer)
    assert metrics["counts"]["conflicting_duplicates"] == 1
    assert metrics["counts"]["parked"] == 1

"""BatchHandler's two passes on real PostgreSQL: the set-based one and the per-message redo.

A batch goes through in one transaction without savepoints (one inbox INSERT, one outbox
INSERT); when a handler raises, the batch is redone with a savepoint per message. These tests
check what that must not change: effects once per event id, a failing message retried or parked
alone, duplicates (within a batch and across batches) skipped, outbox ids in handling order, and
acks only for what was committed or handed to the delay/parking queues.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select

from include.payments.events import PAYMENT_EVENTS, OrderInvalidated, ReceiptSent
from segue.bus import inbox
from segue.bus.consumer import BatchHandler
from segue.bus.handlers import HandlerContext, NotYet, ServiceSpec, Unprocessable
from segue.bus.inbox import InboxRow
from segue.bus.outbox import OutboxRow
from segue.bus.parking import ATTEMPT, PARKED_CODE, PARKED_REASON
from segue.bus.topology import DEAD, RETRY
from segue.events.amqp import to_amqp
from segue.events.envelope import Envelope
from segue.store.engine import session_scope

INPUT = OrderInvalidated.event_type


@dataclass
class FakeMessage:
    """What BatchHandler reads of a Kombu message; acks are settled by its channel."""

    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    content_type: str
    delivery_tag: int
    channel: FakeChannel
    delivery_info: dict[str, Any] = field(default_factory=lambda: {"routing_key": INPUT})
    acks: int = 0

    def ack(self, multiple: bool = False) -> None:
        self.channel.ack(self.delivery_tag, multiple)


@dataclass
class FakeChannel:
    """Deliveries with increasing tags; ``ack(multiple=True)`` settles every tag up to one."""

    delivered: list[FakeMessage] = field(default_factory=list)
    ack_frames: int = 0

    def deliver(self, envelope: Envelope, **headers: Any) -> FakeMessage:
        amqp = to_amqp(envelope)
        message = FakeMessage(
            body=amqp.body,
            headers={**amqp.headers, **headers},
            properties=dict(amqp.properties),
            content_type=amqp.properties["content_type"],
            delivery_tag=len(self.delivered) + 1,
            channel=self,
        )
        self.delivered.append(message)
        return message

    def ack(self, tag: int, multiple: bool) -> None:
        self.ack_frames += 1
        for message in self.delivered:
            if message.delivery_tag == tag or (multiple and message.delivery_tag < tag):
                if multiple and message.acks:
                    continue  # settled before: a multiple ack does not ack it again
                message.acks += 1


@dataclass
class FakePublisher:
    """Records what the handler sent to the delay and parking exchanges."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish_raw(self, body: bytes, *, exchange: Any, routing_key: str, **kw: Any) -> None:
        self.sent.append((str(getattr(exchange, "name", exchange)), kw.get("headers") or {}))


def event(order_id: str) -> Envelope:
    payload = OrderInvalidated(order_id=order_id, field="items", reason="empty")
    return Envelope.create(payload, source="test", subject=order_id, correlation_id=order_id)


def toy_spec(behaviour: Callable[[str], None] = lambda order_id: None) -> ServiceSpec:
    """Emits ReceiptSent for each order, after ``behaviour`` (which may raise) ran."""

    def handle(ctx: HandlerContext, event: OrderInvalidated) -> None:
        ctx.emit(ReceiptSent(order_id=event.order_id, email="a@example.com"))
        behaviour(event.order_id)  # raising here must also drop what was emitted

    return ServiceSpec(name="toy", handlers={INPUT: handle}, registry=PAYMENT_EVENTS)


def outbox_subjects(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.scalars(select(OutboxRow.subject).order_by(OutboxRow.id)))


def inbox_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.scalars(select(InboxRow.event_id)).all())


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


def test_a_clean_batch_is_handled_in_one_pass_with_outbox_ids_in_handling_order(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    handler = BatchHandler(toy_spec(), clean_db, publisher)  # type: ignore[arg-type]
    orders = [f"o-{n}" for n in (3, 1, 2, 5, 4)]
    messages = [channel.deliver(event(order_id)) for order_id in orders]

    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == orders
    assert inbox_count(clean_db) == 5
    assert [m.acks for m in messages] == [1] * 5
    assert channel.ack_frames == 1  # one multiple ack for the settled batch
    assert handler.counts["handled"] == 5
    assert handler.counts["batches_redone"] == 0
    assert publisher.sent == []


def test_one_failing_message_is_retried_alone_and_the_others_are_committed_once(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    def behaviour(order_id: str) -> None:
        if order_id == "o-bad":
            raise RuntimeError("gateway down")

    handler = BatchHandler(toy_spec(behaviour), clean_db, publisher)  # type: ignore[arg-type]
    messages = [channel.deliver(event(order_id)) for order_id in ("o-1", "o-bad", "o-2")]

    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == ["o-1", "o-2"]  # once each; nothing of o-bad
    assert inbox_count(clean_db) == 2  # o-bad is not claimed: its retry will be handled
    assert [m.acks for m in messages] == [1, 1, 1]  # o-bad acked after its retry was sent
    assert channel.ack_frames == 3  # one by one: o-bad's ack must wait for its republish
    assert handler.counts["batches_redone"] == 1
    assert handler.counts["handled"] == 2
    assert handler.counts["retried"] == 1
    [(exchange, headers)] = publisher.sent
    assert exchange == RETRY.name
    assert headers[ATTEMPT] == 1


def test_a_message_out_of_retries_is_parked_with_its_reason_among_good_ones(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    def behaviour(order_id: str) -> None:
        if order_id == "o-bad":
            raise ValueError("no such card")

    handler = BatchHandler(toy_spec(behaviour), clean_db, publisher, retry_limit=2)  # type: ignore[arg-type]
    bad = channel.deliver(event("o-bad"), **{ATTEMPT: 2})
    messages = [channel.deliver(event("o-1")), bad, channel.deliver(event("o-2"))]

    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == ["o-1", "o-2"]
    [(exchange, headers)] = publisher.sent
    assert exchange == DEAD.name
    assert headers[PARKED_CODE] == "retries_exhausted"
    assert "ValueError: no such card" in headers[PARKED_REASON]
    assert bad.acks == 1
    assert handler.counts["parked"] == 1


def test_not_yet_in_a_batch_goes_to_the_delay_queue_and_is_handled_later(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    ready: set[str] = set()

    def behaviour(order_id: str) -> None:
        if order_id == "o-late" and order_id not in ready:
            raise NotYet("its reservation is not there yet")

    handler = BatchHandler(toy_spec(behaviour), clean_db, publisher)  # type: ignore[arg-type]
    late = event("o-late")
    handler.handle([channel.deliver(event("o-1")), channel.deliver(late)])  # type: ignore[list-item]
    assert outbox_subjects(clean_db) == ["o-1"]
    assert handler.counts["not_yet"] == 1
    assert [exchange for exchange, _ in publisher.sent] == [RETRY.name]

    ready.add("o-late")
    handler.handle([channel.deliver(late, **{ATTEMPT: 1})])  # type: ignore[list-item]
    assert outbox_subjects(clean_db) == ["o-1", "o-late"]
    assert handler.counts["batches_redone"] == 1  # only the first batch needed the redo


def test_an_unprocessable_message_is_parked_at_once_with_its_code_and_reason(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    def behaviour(order_id: str) -> None:
        if order_id == "o-bad":
            raise Unprocessable("refused", "HTTP 400: conf.amount is not a number")

    handler = BatchHandler(toy_spec(behaviour), clean_db, publisher)  # type: ignore[arg-type]
    bad = channel.deliver(event("o-bad"))  # a first delivery: no retry budget used yet
    messages = [channel.deliver(event("o-1")), bad]

    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == ["o-1"]
    assert inbox_count(clean_db) == 1  # not claimed: a replay from parking is handled
    [(exchange, headers)] = publisher.sent
    assert exchange == DEAD.name
    assert headers[PARKED_CODE] == "refused"
    assert headers[PARKED_REASON] == "HTTP 400: conf.amount is not a number"
    assert [m.acks for m in messages] == [1, 1]
    assert handler.counts["parked"] == 1 and handler.counts["retried"] == 0


def test_a_spec_may_allow_more_not_yet_retries_than_the_default(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    def behaviour(order_id: str) -> None:
        raise NotYet("the system it needs is down")

    patient = dataclasses.replace(toy_spec(behaviour), not_yet_limit=500)
    handler = BatchHandler(patient, clean_db, publisher, not_yet_limit=3)  # type: ignore[arg-type]
    handler.handle([channel.deliver(event("o-1"), **{ATTEMPT: 3})])  # type: ignore[list-item]
    handler.handle([channel.deliver(event("o-2"), **{ATTEMPT: 500})])  # type: ignore[list-item]

    [(first, retried), (second, parked)] = publisher.sent
    assert (first, retried[ATTEMPT]) == (RETRY.name, 4)  # past the default of 3: retried
    assert (second, parked[PARKED_CODE]) == (DEAD.name, "out_of_order_timeout")


def test_duplicates_within_a_batch_and_across_batches_have_one_effect(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    handler = BatchHandler(toy_spec(), clean_db, publisher)  # type: ignore[arg-type]
    first, second = event("o-1"), event("o-2")
    handler.handle([channel.deliver(first)])  # type: ignore[list-item]

    messages = [
        channel.deliver(second),
        channel.deliver(first),
        channel.deliver(second),
        channel.deliver(event("o-3")),
    ]
    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == ["o-1", "o-2", "o-3"]
    assert inbox_count(clean_db) == 3
    assert [m.acks for m in messages] == [1, 1, 1, 1]
    assert handler.counts["duplicates"] == 2
    assert handler.counts["handled"] == 3
    assert handler.counts["batches_redone"] == 0


def test_duplicates_in_a_redone_batch_are_still_skipped_and_counted_once(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    def behaviour(order_id: str) -> None:
        if order_id == "o-bad":
            raise RuntimeError("boom")

    handler = BatchHandler(toy_spec(behaviour), clean_db, publisher)  # type: ignore[arg-type]
    good = event("o-1")
    messages = [channel.deliver(good), channel.deliver(event("o-bad")), channel.deliver(good)]

    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == ["o-1"]
    assert handler.counts["duplicates"] == 1
    assert handler.counts["handled"] == 1
    assert [m.acks for m in messages] == [1, 1, 1]


def test_a_recorder_with_a_batch_hook_records_the_batch_in_one_call(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    calls: list[list[str]] = []
    singles: list[str] = []

    def record(ctx: HandlerContext, payload: object) -> None:
        singles.append(ctx.envelope.subject)

    def record_batch(session: object, envelopes: list[Envelope]) -> None:
        calls.append([envelope.subject for envelope in envelopes])

    spec = ServiceSpec(
        name="recorder",
        handlers={},
        registry=PAYMENT_EVENTS,
        catch_all=record,
        catch_all_batch=record_batch,
        recorder=True,
    )
    handler = BatchHandler(spec, clean_db, publisher)  # type: ignore[arg-type]
    messages = [channel.deliver(event(order_id)) for order_id in ("o-1", "o-2", "o-3")]

    handler.handle(messages)  # type: ignore[arg-type]

    assert calls == [["o-1", "o-2", "o-3"]]
    assert singles == []
    assert [m.acks for m in messages] == [1, 1, 1]
    assert inbox_count(clean_db) == 0  # a recorder keeps no inbox


def test_a_batch_hook_needs_a_recorder() -> None:
    with pytest.raises(ValueError, match="recorder"):
        ServiceSpec(
            name="x",
            handlers={},
            registry=PAYMENT_EVENTS,
            catch_all=lambda ctx, payload: None,
            catch_all_batch=lambda session, envelopes: None,
        )


def reused(envelope: Envelope, order_id: str) -> Envelope:
    """Another event under ``envelope``'s id (a producer reusing an id)."""
    payload = OrderInvalidated(order_id=order_id, field="items", reason="empty")
    return envelope.model_copy(update={"data": payload})


def parked_codes(publisher: FakePublisher) -> list[str]:
    return [headers[PARKED_CODE] for exchange, headers in publisher.sent if exchange == DEAD.name]


def test_a_reused_id_with_other_content_is_parked_in_the_batch_and_across_batches(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    handler = BatchHandler(toy_spec(), clean_db, publisher)  # type: ignore[arg-type]
    first, second = event("o-1"), event("o-2")
    handler.handle([channel.deliver(first)])  # type: ignore[list-item]

    across = channel.deliver(reused(first, "o-1b"))  # conflicts with the inbox row
    within = channel.deliver(reused(second, "o-2b"))  # conflicts with this batch's o-2
    messages = [channel.deliver(second), across, channel.deliver(first), within]
    handler.handle(messages)  # type: ignore[arg-type]

    assert outbox_subjects(clean_db) == ["o-1", "o-2"]
    assert parked_codes(publisher) == ["conflicting_duplicate"] * 2
    reasons = [headers[PARKED_REASON] for _, headers in publisher.sent]
    assert inbox.content_hash(first) in reasons[0]
    assert inbox.content_hash(reused(first, "o-1b")) in reasons[0]
    assert inbox.content_hash(second) in reasons[1]
    assert [m.acks for m in messages] == [1, 1, 1, 1]  # each exactly once
    assert handler.counts["conflicting_duplicates"] == 2
    assert handler.counts["duplicates"] == 1
    assert handler.counts["parked"] == 2
    assert handler.counts["batches_redone"] == 0
    with session_scope(clean_db) as session:
        stored = dict(session.execute(select(InboxRow.event_id, InboxRow.content_hash)).all())
    assert stored == {first.id: inbox.content_hash(first), second.id: inbox.content_hash(second)}


def test_a_reused_id_is_parked_in_a_redone_batch_too(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    def behaviour(order_id: str) -> None:
        if order_id == "o-bad":
            raise RuntimeError("boom")

    handler = BatchHandler(toy_spec(behaviour), clean_db, publisher)  # type: ignore[arg-type]
    first = event("o-1")
    handler.handle([channel.deliver(first)])  # type: ignore[list-item]
    conflicting = channel.deliver(reused(first, "o-1b"))
    messages = [channel.deliver(event("o-bad")), conflicting, channel.deliver(first)]

    handler.handle(messages)  # type: ignore[arg-type]

    assert handler.counts["batches_redone"] == 1
    assert outbox_subjects(clean_db) == ["o-1"]
    assert sorted(parked_codes(publisher)) == ["conflicting_duplicate"]
    assert handler.counts["conflicting_duplicates"] == 1
    assert handler.counts["duplicates"] == 1
    assert [m.acks for m in messages] == [1, 1, 1]


def test_an_inbox_row_from_before_hashes_matches_any_content(
    clean_db: Engine, publisher: FakePublisher, channel: FakeChannel
) -> None:
    first = event("o-1")
    with session_scope(clean_db) as session:
        inbox.claim(session, "toy", first.id)  # no hash: an old row
    handler = BatchHandler(toy_spec(), clean_db, publisher)  # type: ignore[arg-type]

    handler.handle([channel.deliver(reused(first, "o-1b"))])  # type: ignore[list-item]

    assert handler.counts["duplicates"] == 1
    assert handler.counts["conflicting_duplicates"] == 0
    assert publisher.sent == []
    assert outbox_subjects(clean_db) == []

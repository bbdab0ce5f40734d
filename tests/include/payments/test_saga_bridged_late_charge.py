"""A charge that lands after the bridged saga gave up is refunded exactly once.

The real charge service and saga-replies run on real RabbitMQ against real PostgreSQL and the
real gateway process. The saga sends ChargeRequested while the charge service is down, its
reply timeout fires (a clock moved past it) and the saga starts compensating; the charge service
then starts and charges the queued command before the compensation failed the order. Proved by
counting rows in our charges/refunds tables, the gateway's ledger (/stats, GET /charges) and the
RefundIssued events on the bus — also after the reply is delivered again (same id) and answered
again (a new id). Once the saga has ended (the order failed), a queued command is refused by
the charge service and nothing is charged at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from kombu import Connection, Queue
from sqlalchemy import Engine, func, select

from include.gateway.admin import stats as gateway_stats
from include.payments import steps
from include.payments.deps import PaymentDeps
from include.payments.events import PAYMENT_EVENTS, ChargeCompleted, RefundIssued
from include.payments.models import ChargeRecord
from include.payments.saga_bridged import CHARGE_STEP, bridged_payment_machine
from include.payments.tables import ChargeRow, OrderRow, RefundRow
from include.services.charge import charge_service
from include.services.saga_replies import LATE_CHARGE_REFUNDED, NAME, saga_replies_service
from segue.bus.connection import connect
from segue.bus.handlers import HandlerContext
from segue.bus.inbox import InboxRow
from segue.bus.outbox import OutboxRow
from segue.bus.publisher import Publisher
from segue.bus.runtime import ServiceRuntime
from segue.bus.topology import EVENTS, declare_exchanges
from segue.events.amqp import from_amqp
from segue.events.envelope import Envelope
from segue.statemachine.records import Instance
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from segue.store.engine import session_scope, utcnow
from tests.polling import wait_for

REFUNDS_PROBE = "test.late-charge.refunds"
REPLIES_PROBE = "test.late-charge.replies"
PAST_THE_TIMEOUT = timedelta(seconds=CHARGE_STEP.timeout_seconds + 1)


@dataclass
class Clock:
    """Now, plus an offset a test moves forward to make a saga's timeout due."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@dataclass
class Services:
    """saga-replies running, the charge service ready to start, probes of what goes on the bus."""

    connection: Connection
    charge: ServiceRuntime
    replies: ServiceRuntime
    seen_replies: list[Any] = field(default_factory=list)

    def start_charge(self) -> None:
        self.charge.start()
        wait_for(self.charge.ready, what="charge ready")

    def refund_events(self) -> list[Envelope]:
        return [self._decode(m) for m in _take_all(self.connection, REFUNDS_PROBE)]

    def replies_on_the_bus(self) -> list[Envelope]:
        self.seen_replies.extend(_take_all(self.connection, REPLIES_PROBE))
        return [self._decode(m) for m in self.seen_replies]

    def publish(self, envelope: Envelope) -> None:
        Publisher(self.connection).publish_event(envelope)

    @staticmethod
    def _decode(message: Any) -> Envelope:
        return from_amqp(message.body, message.headers, message.content_type, PAYMENT_EVENTS)


def _take_all(connection: Connection, queue: str) -> list[Any]:
    messages, channel = [], connection.default_channel
    while (message := channel.basic_get(queue, no_ack=True)) is not None:
        messages.append(message)
    return messages


@pytest.fixture
def services(fresh_amqp_url: str, clean_db: Engine, deps: PaymentDeps) -> Iterator[Services]:
    specs = [charge_service(deps.gateway), saga_replies_service(deps.gateway)]
    with connect(fresh_amqp_url) as connection:
        declare_exchanges(connection)
        for name, event in ((REFUNDS_PROBE, RefundIssued), (REPLIES_PROBE, ChargeCompleted)):
            probe = Queue(name, exchange=EVENTS, routing_key=event.event_type)
            probe(connection.default_channel).declare()
        charge, replies = (
            ServiceRuntime(spec, engine=clean_db, amqp_url=fresh_amqp_url, peers=specs)
            for spec in specs
        )
        try:
            replies.start()  # declares the charge service's queue: the command waits there
            wait_for(replies.ready, what="saga-replies ready")
            yield Services(connection, charge, replies)
        finally:
            for runtime in (replies, charge):
                if runtime.threads[0].is_alive():
                    runtime.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def saga(deps: PaymentDeps, clean_db: Engine, clock: Clock) -> SagaRunner:
    return SagaRunner(bridged_payment_machine(deps), SagaStore(clean_db), actor="test", clock=clock)


def count(engine: Engine, table: type[ChargeRow] | type[RefundRow], order_id: str) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(table).where(table.order_id == order_id)
        return int(session.scalar(query) or 0)


def order_status(engine: Engine, order_id: str) -> str | None:
    with session_scope(engine) as session:
        order = session.get(OrderRow, order_id)
        return order.status if order else None


def handled_by(engine: Engine, consumer: str, event_id: str) -> bool:
    with session_scope(engine) as session:
        return session.get(InboxRow, (consumer, event_id)) is not None


def handled(engine: Engine, event_id: str) -> bool:
    return handled_by(engine, NAME, event_id)


def outbox_empty(engine: Engine) -> bool:
    with session_scope(engine) as session:
        return not session.scalar(select(func.count()).select_from(OutboxRow))


def gateway_ledger(gateway_url: str, order_id: str) -> tuple[int, int, list[dict[str, Any]]]:
    """(charges succeeded, refunds) from the gateway's stats, and its charges for the order."""
    stats = gateway_stats(gateway_url)
    response = httpx.get(f"{gateway_url}/charges", params={"reference": order_id}, timeout=5)
    response.raise_for_status()
    return stats["charges"]["succeeded"], stats["refunds"], response.json()


def trail(saga: SagaRunner, instance_id: str) -> list[tuple[str, str]]:
    return [(row["to_state"], row["event"]) for row in saga.store.audit_trail(instance_id)]


def until_awaiting_charge(saga: SagaRunner, order_id: str) -> Instance:
    instance = saga.run(order_id)
    assert (instance.state, instance.status) == (CHARGE_STEP.wait_state, "waiting")
    return instance


def assert_refunded_once(engine: Engine, gateway_url: str, order_id: str) -> None:
    """One charge and one refund of it, in our tables and in the gateway's ledger."""
    assert count(engine, ChargeRow, order_id) == 1
    assert count(engine, RefundRow, order_id) == 1
    succeeded, refunds, charges = gateway_ledger(gateway_url, order_id)
    assert (succeeded, refunds) == (1, 1)
    assert len(charges) == 1
    assert Decimal(charges[0]["amount_refunded"]) == Decimal(charges[0]["amount"])
    with session_scope(engine) as session:
        refund = session.scalar(select(RefundRow).where(RefundRow.order_id == order_id))
        assert refund is not None
        assert refund.idempotency_key == steps.refund_key(order_id)
        assert refund.gateway_charge_id == charges[0]["id"]
        assert refund.amount == Decimal(charges[0]["amount"])


def test_a_charge_after_the_reply_timeout_is_refunded_once_even_if_the_reply_comes_twice(
    services: Services,
    saga: SagaRunner,
    clock: Clock,
    order_data,
    clean_db: Engine,
    gateway_url: str,
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    instance = until_awaiting_charge(saga, order_id)  # sent; the charge service is down

    clock.offset = PAST_THE_TIMEOUT
    instance = saga.advance(instance)  # the timeout fires: FAILED, about to undo CHARGING
    assert (instance.state, instance.status) == ("FAILED", "compensating")
    assert order_status(clean_db, order_id) == "validated"  # failed by the last compensation

    services.start_charge()  # it charges the command that waited in its queue
    wait_for(lambda: count(clean_db, ChargeRow, order_id) == 1, what="the late charge")
    wait_for(lambda: count(clean_db, RefundRow, order_id) == 1, what="the late charge refunded")
    assert trail(saga, order_id).count(("FAILED", LATE_CHARGE_REFUNDED)) == 1
    instance = saga.run(order_id)  # UNDO_CHARGING finds the refund already made
    assert instance.status == "compensated"
    assert order_status(clean_db, order_id) == "failed"
    assert_refunded_once(clean_db, gateway_url, order_id)

    (reply,) = wait_for(services.replies_on_the_bus, what="the late ChargeCompleted")
    assert reply.correlationid == order_id
    services.publish(reply)  # delivered again: the inbox absorbs it
    wait_for(lambda: services.replies.counts["duplicates"] >= 1, what="the duplicate dropped")
    again = reply.model_copy(update={"id": str(uuid.uuid4())})
    services.publish(again)  # answered again under a new id: handled, finds the refund done
    wait_for(lambda: handled(clean_db, again.id), what="the second reply handled")

    wait_for(lambda: outbox_empty(clean_db), what="everything emitted published")
    refunds_announced = services.refund_events()
    assert len(refunds_announced) == 1
    announced = refunds_announced[0].data
    assert isinstance(announced, RefundIssued) and announced.order_id == order_id
    with session_scope(clean_db) as session:
        refund = session.scalar(select(RefundRow).where(RefundRow.order_id == order_id))
        assert refund is not None and announced.gateway_refund_id == refund.gateway_refund_id
    assert_refunded_once(clean_db, gateway_url, order_id)
    assert trail(saga, order_id).count(("FAILED", LATE_CHARGE_REFUNDED)) == 1


def test_a_command_still_queued_when_the_saga_has_ended_is_refused_not_charged(
    services: Services, saga: SagaRunner, order_data, clean_db: Engine, gateway_url: str
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    command = until_awaiting_charge(saga, order_id).data[CHARGE_STEP.sent_key]
    assert saga.compensate_now(order_id).status == "compensated"  # an operator gives up
    assert order_status(clean_db, order_id) == "failed"

    services.start_charge()
    wait_for(lambda: handled_by(clean_db, "charge", command), what="the command handled")
    assert count(clean_db, ChargeRow, order_id) == 0
    assert count(clean_db, RefundRow, order_id) == 0
    assert gateway_ledger(gateway_url, order_id)[:2] == (0, 0)
    assert LATE_CHARGE_REFUNDED not in {event for _, event in trail(saga, order_id)}


# --- the two refunders meet: the saga's compensation and the late reply ---------------------


def late_reply(order_id: str, charge: ChargeRecord) -> Envelope:
    payload = ChargeCompleted(
        order_id=order_id,
        gateway_charge_id=charge.gateway_charge_id,
        amount=charge.amount,
        currency=charge.currency,
        requested_by="charge_requested",
    )
    return Envelope.create(payload, source="charge", subject=order_id, correlation_id=order_id)


def deliver(engine: Engine, deps: PaymentDeps, envelope: Envelope) -> HandlerContext:
    """Hand ``envelope`` to the saga-replies handler as the runtime would (no broker)."""
    spec = saga_replies_service(deps.gateway)
    handler = spec.handler_for(envelope.type)
    assert handler is not None
    with session_scope(engine) as session:
        context = HandlerContext(spec.name, envelope, session)
        handler(context, envelope.data)
    return context


def charge_now(deps: PaymentDeps, order_id: str) -> ChargeRecord:
    """What the charge service does for the command: charge once, under the order's lock."""
    with session_scope(deps.engine) as session:
        steps.locked_status(session, order_id)
        return steps.charge_card(session, deps.gateway, order_id)


def test_a_reply_landing_mid_compensation_and_the_compensation_refund_once(
    saga: SagaRunner, clock: Clock, deps: PaymentDeps, order_data, clean_db, gateway_url
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    instance = until_awaiting_charge(saga, order_id)
    clock.offset = PAST_THE_TIMEOUT
    instance = saga.advance(instance)  # timed out: FAILED, about to undo CHARGING
    assert (instance.state, instance.status) == ("FAILED", "compensating")
    charge = charge_now(deps, order_id)  # the command was charged just now

    emitted = deliver(clean_db, deps, late_reply(order_id, charge)).emitted
    assert [e.type for e in emitted] == [RefundIssued.event_type]
    instance = saga.run(order_id)  # UNDO_CHARGING finds the refund already made
    assert instance.status == "compensated"
    assert_refunded_once(clean_db, gateway_url, order_id)


def test_a_charge_the_compensation_refunded_is_not_refunded_again_by_its_late_reply(
    saga: SagaRunner, clock: Clock, deps: PaymentDeps, order_data, clean_db, gateway_url
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    until_awaiting_charge(saga, order_id)
    charge = charge_now(deps, order_id)  # charged in time, but the reply is slow
    clock.offset = PAST_THE_TIMEOUT
    assert saga.run(order_id).status == "compensated"  # UNDO_CHARGING refunded it
    assert count(clean_db, RefundRow, order_id) == 1

    for _ in range(2):
        assert deliver(clean_db, deps, late_reply(order_id, charge)).emitted == []
    assert_refunded_once(clean_db, gateway_url, order_id)
    assert LATE_CHARGE_REFUNDED not in {event for _, event in trail(saga, order_id)}


def test_a_stale_reply_to_a_saga_that_succeeded_refunds_nothing(
    saga: SagaRunner, deps: PaymentDeps, order_data, clean_db, gateway_url
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    until_awaiting_charge(saga, order_id)
    charge = charge_now(deps, order_id)
    reply = late_reply(order_id, charge)
    command = saga.store.load(order_id).data[CHARGE_STEP.sent_key]
    saga.send(order_id, "charge_completed", {"charge": {"gateway_charge_id": "x"}})
    assert saga.run(order_id).status == "succeeded"

    assert reply.causationid != command
    assert deliver(clean_db, deps, reply).emitted == []  # not awaited, but the saga uses it
    assert count(clean_db, RefundRow, order_id) == 0
    assert gateway_ledger(gateway_url, order_id)[:2] == (1, 0)

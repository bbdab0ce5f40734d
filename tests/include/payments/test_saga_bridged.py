"""The bridged payment saga: CHARGING sends ChargeRequested to the real charge service over real
RabbitMQ and awaits its reply, which saga-replies (run in-process) hands to the instance.

Proved by the business tables: one charge for a good order, none (and the completed steps
undone) for a declined card, and still one when a crash makes the saga send the command again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from kombu import Connection, Queue
from sqlalchemy import Engine, func, select

from include.payments.deps import PaymentDeps
from include.payments.events import ChargeCompleted, ChargeRequested
from include.payments.saga_bridged import (
    CHARGE_STEP,
    PAYMENT_MACHINE_BRIDGED,
    bridged_payment_machine,
)
from include.payments.tables import ChargeRow, OrderRow
from include.services.charge import charge_service
from include.services.saga_replies import saga_replies_service
from segue.bus.connection import connect
from segue.bus.handlers import HandlerContext, NotYet
from segue.bus.runtime import ServiceRuntime
from segue.bus.topology import EVENTS, declare_exchanges
from segue.events.envelope import Envelope
from segue.statemachine.command import command_event_id
from segue.statemachine.records import Instance
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from segue.store.engine import session_scope
from tests.polling import wait_for

DECLINED_TOKEN = "pm_card_chargeDeclined"
PROBE = "test.saga-bridged.commands"


@dataclass
class Bridge:
    """The charge service and saga-replies running, and a probe of the commands on the wire."""

    connection: Connection

    def commands(self) -> list[str]:
        """The ids of the ChargeRequested messages published since the last look."""
        ids, channel = [], self.connection.default_channel
        while (message := channel.basic_get(PROBE, no_ack=True)) is not None:
            ids.append(message.properties["message_id"])
        return ids


@pytest.fixture
def bridge(fresh_amqp_url: str, clean_db: Engine, deps: PaymentDeps) -> Iterator[Bridge]:
    specs = [charge_service(deps.gateway), saga_replies_service(deps.gateway)]
    with connect(fresh_amqp_url) as connection:
        declare_exchanges(connection)
        probe = Queue(PROBE, exchange=EVENTS, routing_key=ChargeRequested.event_type)
        probe(connection.default_channel).declare()
        runtimes = [
            ServiceRuntime(spec, engine=clean_db, amqp_url=fresh_amqp_url, peers=specs)
            for spec in specs
        ]
        try:
            for runtime in runtimes:
                runtime.start()
                wait_for(runtime.ready, what=f"{runtime.spec.name} ready")
            yield Bridge(connection)
        finally:
            for runtime in runtimes:
                runtime.stop()


@pytest.fixture
def saga(deps: PaymentDeps, clean_db: Engine) -> SagaRunner:
    return SagaRunner(bridged_payment_machine(deps), SagaStore(clean_db), actor="test")


def charges(engine: Engine, order_id: str) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(ChargeRow).where(ChargeRow.order_id == order_id)
        return int(session.scalar(query) or 0)


def order_status(engine: Engine, order_id: str) -> str | None:
    with session_scope(engine) as session:
        order = session.get(OrderRow, order_id)
        return order.status if order else None


def run_until_final(saga: SagaRunner, instance_id: str, timeout: float = 30.0) -> Instance:
    """What RunSagaOperator does, minus Airflow: run, and while waiting poll for progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instance = saga.run(instance_id)
        if instance.final:
            return instance
        time.sleep(0.1)
    last = saga.store.load(instance_id)
    raise AssertionError(f"{instance_id} not final after {timeout}s: {last}")


def trail(saga: SagaRunner, instance_id: str) -> list[tuple[str, str]]:
    return [(row["to_state"], row["event"]) for row in saga.store.audit_trail(instance_id)]


def test_the_bridged_machine_differs_from_payment_saga_only_in_charging() -> None:
    charging = PAYMENT_MACHINE_BRIDGED.state("CHARGING")
    waiting = PAYMENT_MACHINE_BRIDGED.state("AWAITING_CHARGE")
    assert (charging.kind, charging.action, charging.compensation) == (
        "task",
        "request_charge",
        "refund",
    )
    assert {(t.event, t.target) for t in waiting.transitions} == {
        ("charge_completed", "FULFILMENT"),
        ("charge_failed", "FAILED"),
        ("timeout", "FAILED"),
    }
    assert waiting.kind == "wait" and waiting.timeout_seconds
    assert PAYMENT_MACHINE_BRIDGED.state("FULFILMENT").transitions


def test_a_good_order_succeeds_through_the_charge_service_with_one_charge(
    bridge, saga, order_data, clean_db
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    first = saga.run(order_id)
    assert first.state in ("AWAITING_CHARGE", "FULFILMENT") or first.final
    instance = run_until_final(saga, order_id)
    assert (instance.state, instance.status) == ("SUCCEEDED", "succeeded")
    assert ("AWAITING_CHARGE", "done") in trail(saga, order_id)
    assert ("FULFILMENT", "charge_completed") in trail(saga, order_id)
    assert instance.data["charge"]["gateway_charge_id"]
    assert instance.data[CHARGE_STEP.sent_key] == command_event_id(order_id, "CHARGING", 1)
    assert charges(clean_db, order_id) == 1


def test_a_declined_card_compensates_with_no_charge(bridge, saga, order_data, clean_db) -> None:
    data = order_data(payment_method=DECLINED_TOKEN)
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    instance = run_until_final(saga, order_id)
    assert instance.status == "compensated"
    assert ("FAILED", "charge_failed") in trail(saga, order_id)
    assert instance.context["undone"] == ["CHARGING", "VALIDATING"]
    assert instance.data["charge_failure"]["code"]
    assert charges(clean_db, order_id) == 0
    assert order_status(clean_db, order_id) == "failed"


def test_a_crash_before_the_save_resends_the_same_command_and_charges_once(
    bridge, saga, order_data, clean_db
) -> None:
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    assert bridge.commands() == []
    instance = saga.store.load(order_id)
    while instance.state != "CHARGING":
        instance = saga.advance(instance)
    saga.planner.next_move(instance)  # the command is sent, then the worker dies: no save
    wait_for(lambda: charges(clean_db, order_id) == 1, what="the first command charged")
    assert saga.store.load(order_id).state == "CHARGING"  # its reply cannot be delivered yet

    instance = run_until_final(saga, order_id)  # a new worker resumes: the command goes again
    assert (instance.state, instance.status) == ("SUCCEEDED", "succeeded")
    assert charges(clean_db, order_id) == 1
    sent = command_event_id(order_id, "CHARGING", 1)
    # The saga can end before the relay publishes the second copy: collect until it shows.
    seen: list[str] = []
    wait_for(lambda: seen.extend(bridge.commands()) or len(seen) >= 2, what="the command again")
    assert seen == [sent, sent]  # the same id twice; the inbox absorbed one


def reply(order_id: str, requested_by: str = "charge_requested") -> Envelope:
    payload = ChargeCompleted(
        order_id=order_id,
        gateway_charge_id="ch_late",
        amount=Decimal("49.99"),
        currency="USD",
        requested_by=requested_by,
    )
    return Envelope.create(payload, source="charge", subject=order_id, correlation_id=order_id)


def deliver(engine: Engine, envelope: Envelope) -> None:
    """Hand ``envelope`` to the saga-replies handler as the runtime would (no broker)."""
    spec = saga_replies_service()
    with session_scope(engine) as session:
        handler = spec.handler_for(envelope.type)
        assert handler is not None
        handler(HandlerContext(spec.name, envelope, session), envelope.data)


def test_replies_not_awaited_are_ignored_and_early_ones_retried(
    saga, order_data, clean_db, caplog
) -> None:
    deliver(clean_db, reply("ord-no-such-saga"))  # another orchestrator's: ignored
    data = order_data()
    order_id = str(data["order_id"])
    saga.start(order_id, data)
    instance = saga.store.load(order_id)
    while instance.state != "CHARGING":
        instance = saga.advance(instance)
    with pytest.raises(NotYet):  # the reply overtook the saga's save: later
        deliver(clean_db, reply(order_id))
    instance = saga.advance(instance)
    assert (instance.state, instance.status) == ("AWAITING_CHARGE", "waiting")
    deliver(clean_db, reply(order_id, requested_by="order_validated"))  # not a reply
    deliver(clean_db, reply(order_id))  # answers another command (its causation): ignored
    assert saga.store.load(order_id).version == instance.version
    saga.compensate_now(order_id)
    with caplog.at_level(logging.INFO):
        deliver(clean_db, reply(order_id))  # the saga is over and charged nothing: ignored
    assert "no longer awaited" in caplog.text and "nothing to refund" in caplog.text
    assert saga.store.load(order_id).status == "compensated"

"""The library's command/reply step on a small machine (no payment code): the command goes to the
outbox once per visit whatever the retries, replies map to their states, silence times out.
SQLite store and outbox, controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from sqlalchemy import Engine, select

from segue.bus.outbox import OutboxRow
from segue.bus.tables import COMPONENT as BUS
from segue.events.payload import EventPayload
from segue.migrations import upgrade
from segue.statemachine.command import CommandStep, command_action, command_event_id
from segue.statemachine.definition import State, StateMachineDefinition, Transition
from segue.statemachine.machine import ActionContext, Machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from segue.store.engine import build_engine, session_scope


class ShipRequested(EventPayload):
    event_type: ClassVar[str] = "test.ship_requested"

    parcel: str


STEP = CommandStep(
    state="SHIPPING",
    wait_state="AWAITING_SHIPMENT",
    action="request_shipping",
    on_reply={"shipped": "DONE", "lost": "FAILED"},
    timeout_seconds=60,
    compensation="cancel_shipping",
    sent_key="ship_command_id",
)
IN_PROCESS = (
    State(
        name="SHIPPING",
        kind="task",
        action="ship",
        compensation="cancel_shipping",
        transitions=(
            Transition(event="done", target="DONE"),
            Transition(event="failed", target="FAILED"),
        ),
    ),
    State(name="DONE", kind="succeed"),
    State(name="FAILED", kind="fail"),
)
DEFINITION = StateMachineDefinition(
    name="parcel", initial="SHIPPING", events=STEP.events, states=STEP.replace_in(IN_PROCESS)
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(tmp_path) -> Engine:
    """A store with the saga tables and the bus's outbox, migrated as a workflow would."""
    engine = build_engine(f"sqlite:///{tmp_path / 'command.db'}")
    upgrade(engine, [BUS])
    return engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cancelled() -> list[str]:
    return []


@pytest.fixture
def runner(engine: Engine, clock: Clock, cancelled: list[str]) -> SagaRunner:
    def build(ctx: ActionContext) -> ShipRequested:
        return ShipRequested(parcel=ctx.data["parcel"])

    def cancel_shipping(ctx: ActionContext) -> None:
        cancelled.append(ctx.data["parcel"])

    send = command_action(STEP, lambda: engine, build, source="shipper", subject_field="parcel")
    machine = Machine(DEFINITION, {STEP.action: send, "cancel_shipping": cancel_shipping})
    return SagaRunner(machine, SagaStore(engine), actor="test", clock=clock)


def commands(engine: Engine) -> list[tuple[str, str, str]]:
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        return [(row.event_id, row.source, row.subject) for row in rows]


def test_the_step_replaces_the_in_process_state_with_a_send_and_a_wait() -> None:
    send, wait = DEFINITION.state("SHIPPING"), DEFINITION.state("AWAITING_SHIPMENT")
    assert (send.kind, send.action) == ("task", "request_shipping")
    assert {(t.event, t.target) for t in send.transitions} == {
        ("done", "AWAITING_SHIPMENT"),
        ("failed", "FAILED"),
    }
    assert (wait.kind, wait.timeout_seconds) == ("wait", 60)
    assert {(t.event, t.target) for t in wait.transitions} == {
        ("shipped", "DONE"),
        ("lost", "FAILED"),
        ("timeout", "FAILED"),
    }
    assert [state.name for state in DEFINITION.states] == [
        "SHIPPING",
        "AWAITING_SHIPMENT",
        "DONE",
        "FAILED",
    ]


def test_the_command_is_queued_once_and_the_reply_moves_the_instance(runner, engine) -> None:
    runner.start("p-1", {"parcel": "parcel-7"})
    waiting = runner.run("p-1")
    sent = command_event_id("p-1", "SHIPPING", 1)
    assert (waiting.state, waiting.status) == ("AWAITING_SHIPMENT", "waiting")
    assert waiting.data[STEP.sent_key] == sent
    action = runner.machine.actions[STEP.action]
    context = ActionContext(instance_id="p-1", state="SHIPPING", data=waiting.data, attempt=2)
    assert action(context) == {STEP.sent_key: sent}  # a retry queues the same id: absorbed
    assert commands(engine) == [(sent, "shipper", "parcel-7")]

    runner.send("p-1", "shipped", {"tracking": "T1"})
    done = runner.run("p-1")
    assert (done.state, done.status, done.data["tracking"]) == ("DONE", "succeeded", "T1")
    assert commands(engine) == [(sent, "shipper", "parcel-7")]


def test_no_reply_in_time_fires_the_timeout_and_compensates_the_sent_command(
    runner, clock, cancelled
) -> None:
    runner.start("p-2", {"parcel": "parcel-8"})
    assert runner.run("p-2").state == "AWAITING_SHIPMENT"
    clock.now += timedelta(seconds=STEP.timeout_seconds - 1)
    assert runner.run("p-2").state == "AWAITING_SHIPMENT"  # not yet
    clock.now += timedelta(seconds=2)
    ended = runner.run("p-2")
    assert (ended.state, ended.status) == ("COMPENSATED", "compensated")
    assert cancelled == ["parcel-8"]

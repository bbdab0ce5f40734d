"""Engine semantics on a small machine: guards choose the transition, timeouts fire, wait states
take external events, retries back off, loops are bounded. SQLite store, controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.payments.errors import GatewayUnavailable
from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import Machine, Outcome
from segue.statemachine.runner import InvalidAction, SagaRunner
from segue.statemachine.store import SagaStore
from segue.store.engine import build_engine


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


DEFINITION = {
    "name": "approval",
    "initial": "SCORE",
    "events": ["approved", "rejected"],
    "states": [
        {
            "name": "SCORE",
            "kind": "task",
            "action": "score",
            "side_effects": False,
            "retry": {"max_attempts": 3, "backoff_seconds": 10, "backoff_rate": 2},
            "transitions": [
                {"event": "done", "target": "AUTO_OK", "guard": "low_risk"},
                {"event": "done", "target": "REVIEW"},
            ],
        },
        {
            "name": "REVIEW",
            "kind": "wait",
            "timeout_seconds": 60,
            "transitions": [
                {"event": "approved", "target": "AUTO_OK"},
                {"event": "rejected", "target": "NO"},
                {"event": "timeout", "target": "NO"},
            ],
        },
        {
            "name": "AUTO_OK",
            "kind": "task",
            "action": "book",
            "compensation": "unbook",
            "timeout_seconds": 30,
            "transitions": [
                {"event": "done", "target": "YES"},
                {"event": "timeout", "target": "NO"},
            ],
        },
        {"name": "YES", "kind": "succeed"},
        {"name": "NO", "kind": "fail"},
    ],
}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make(tmp_path, clock):
    store = SagaStore(build_engine(f"sqlite:///{tmp_path / 'sagas.db'}"))
    calls: list[str] = []

    def build(score=lambda ctx: Outcome(data={"risk": ctx.data["risk"]})):
        actions = {
            "score": score,
            "book": lambda ctx: calls.append("book"),
            "unbook": lambda ctx: calls.append("unbook"),
        }
        machine = Machine(
            StateMachineDefinition.model_validate(DEFINITION),
            actions,
            {"low_risk": lambda data: data["risk"] < 50},
        )
        return SagaRunner(machine, store, clock=clock)

    build.calls = calls
    build.store = store
    return build


def states(store, instance_id):
    return [row["to_state"] for row in store.audit_trail(instance_id)]


def test_guard_picks_the_first_allowed_transition(make):
    engine = make()
    engine.start("low", {"risk": 10})
    assert engine.run("low").state == "YES"
    engine.start("high", {"risk": 90})
    assert engine.run("high").state == "REVIEW"
    assert states(make.store, "low") == ["SCORE", "AUTO_OK", "YES"]


def test_wait_state_takes_an_external_event(make):
    engine = make()
    engine.start("i", {"risk": 90})
    waiting = engine.run("i")
    assert (waiting.state, waiting.status) == ("REVIEW", "waiting")
    assert engine.must_wait(waiting)
    with pytest.raises(InvalidAction, match="does not handle event 'paid'"):
        engine.send("i", "paid")
    engine.send("i", "approved", {"reviewer": "ada"})
    final = engine.run("i")
    assert final.state == "YES" and final.data["reviewer"] == "ada"


def test_wait_state_times_out(make, clock):
    engine = make()
    engine.start("i", {"risk": 90})
    waiting = engine.run("i")
    assert waiting.wake_at == clock.now + timedelta(seconds=60)
    clock.advance(59)
    assert engine.run("i").state == "REVIEW"
    clock.advance(2)
    final = engine.run("i")
    assert (final.state, final.status) == ("NO", "failed")  # nothing completed: no compensation
    assert make.store.audit_trail("i")[-1]["event"] == "timeout"


def test_task_timeout_fires_before_a_late_attempt(make, clock):
    engine = make()
    engine.start("i", {"risk": 10})
    instance = engine.store.load("i")
    instance = engine.advance(instance)  # SCORE -> AUTO_OK
    assert instance.state == "AUTO_OK"
    clock.advance(31)
    final = engine.run("i")
    assert final.state == "NO"
    assert "timed out after 30.0s" in final.error
    assert make.calls == []  # the timed-out step never ran


def test_retryable_errors_back_off_then_fail_after_the_last_attempt(make, clock):
    attempts: list[int] = []

    def score(ctx):
        attempts.append(ctx.attempt)
        raise GatewayUnavailable("down")

    engine = make(score=score)
    engine.start("i", {"risk": 1})
    first = engine.run("i")
    assert first.wake_at == clock.now + timedelta(seconds=10)
    clock.advance(10)
    second = engine.run("i")
    assert second.wake_at == clock.now + timedelta(seconds=20)  # backoff_rate 2
    clock.advance(20)
    final = engine.run("i")
    assert attempts == [1, 2, 3]
    assert (final.state, final.status) == ("NO", "failed")
    assert "GatewayUnavailable" in final.error


def test_compensation_runs_for_completed_steps_only(make):
    engine = make()
    engine.start("i", {"risk": 10})
    instance = engine.advance(engine.store.load("i"))  # SCORE done -> AUTO_OK
    instance = engine.advance(instance)  # AUTO_OK done (booked) -> YES
    assert instance.state == "YES"
    with pytest.raises(InvalidAction):
        engine.compensate_now("i")
    engine.start("j", {"risk": 10})
    engine.advance(engine.store.load("j"))
    engine.compensate_now("j", actor="ops")  # before booking: nothing to undo
    assert make.calls == ["book"]
    assert engine.store.load("j").status == "failed"

"""Parallel branches run at the same time, the join waits for all of them, and a failing branch
keeps what its siblings finished (so compensation undoes them). SQLite store."""

from __future__ import annotations

import threading

import pytest

from include.payments.errors import GatewayRejected, GatewayUnavailable
from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import Machine
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from segue.store.engine import build_engine

DEFINITION = {
    "name": "fan_out",
    "initial": "BOTH",
    "states": [
        {
            "name": "BOTH",
            "kind": "parallel",
            "branches": ["LEFT", "RIGHT"],
            "transitions": [{"event": "done", "target": "OK"}, {"event": "failed", "target": "NO"}],
        },
        {
            "name": "LEFT",
            "kind": "task",
            "action": "left",
            "compensation": "undo_left",
            "retry": {"max_attempts": 2, "backoff_seconds": 0},
            "transitions": [{"event": "done", "target": "OK"}],
        },
        {
            "name": "RIGHT",
            "kind": "task",
            "action": "right",
            "compensation": "undo_right",
            "retry": {"max_attempts": 2, "backoff_seconds": 0},
            "transitions": [{"event": "done", "target": "OK"}],
        },
        {"name": "OK", "kind": "succeed"},
        {"name": "NO", "kind": "fail"},
    ],
}


@pytest.fixture
def store(tmp_path):
    return SagaStore(build_engine(f"sqlite:///{tmp_path / 'sagas.db'}"))


def engine_with(store: SagaStore, **actions) -> SagaRunner:
    calls: list[str] = []

    def recorder(name):
        def action(ctx):
            calls.append(name)

        return action

    bound = {n: recorder(n) for n in ("left", "right", "undo_left", "undo_right")}
    machine = Machine(StateMachineDefinition.model_validate(DEFINITION), {**bound, **actions})
    engine = SagaRunner(machine, store)
    engine.calls = calls  # type: ignore[attr-defined]
    return engine


def test_both_branches_run_at_the_same_time(store):
    # Each branch waits for the other at the barrier: run one after the other, it would break.
    barrier = threading.Barrier(2, timeout=10)
    both = {"left": lambda ctx: {"left": barrier.wait() >= 0}}
    both["right"] = lambda ctx: {"right": barrier.wait() >= 0}
    engine = engine_with(store, **both)
    engine.start("i1", {})
    instance = engine.run("i1")
    assert (instance.state, instance.status) == ("OK", "succeeded")
    assert instance.data == {"left": True, "right": True}
    events = [row["event"] for row in store.audit_trail("i1")]
    assert events == ["start", "LEFT+RIGHT.done", "done"]


def test_a_failing_branch_keeps_what_its_sibling_did_and_compensation_undoes_it(store):
    def right(ctx):
        raise GatewayRejected("no")

    engine = engine_with(store, right=right)
    engine.start("i2", {})
    instance = engine.run("i2")
    assert instance.status == "compensated"
    assert "RIGHT: GatewayRejected: no" in (instance.error or "")
    assert engine.calls == ["left", "undo_left"]  # type: ignore[attr-defined]


def test_a_retried_branch_runs_alone_the_finished_one_is_not_repeated(store):
    attempts: list[int] = []

    def right(ctx):
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise GatewayUnavailable("blip")

    engine = engine_with(store, right=right)
    engine.start("i3", {})
    instance = engine.run("i3")
    assert (instance.state, instance.status) == ("OK", "succeeded")
    assert attempts == [1, 2]
    assert engine.calls == ["left"]  # type: ignore[attr-defined]
    events = [row["event"] for row in store.audit_trail("i3")]
    assert events == ["start", "retry", "RIGHT.done", "done"]

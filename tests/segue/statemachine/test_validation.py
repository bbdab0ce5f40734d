"""Every invalid definition is rejected when the machine is built, naming the culprit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import Machine
from segue.statemachine.validation import DefinitionError

ACTIONS = {"work": lambda ctx: None, "undo": lambda ctx: None}


def machine(states, initial="A", events=(), guards=None):
    definition = StateMachineDefinition.model_validate(
        {"name": "m", "initial": initial, "events": list(events), "states": states}
    )
    return Machine(definition, ACTIONS, guards or {})


def task(name, target="END", **extra):
    spec = {"name": name, "kind": "task", "action": "work", "compensation": "undo"}
    spec["transitions"] = [{"event": "done", "target": target}]
    spec.update(extra)
    return spec


END = {"name": "END", "kind": "succeed"}
FAIL = {"name": "FAIL", "kind": "fail"}


def test_a_sound_machine_builds():
    assert machine([task("A"), END]).name == "m"


@pytest.mark.parametrize(
    ("states", "kwargs", "culprit", "message"),
    [
        ([task("A"), END, {"name": "LOST", "kind": "succeed"}], {}, "LOST", "unreachable"),
        ([task("A", target="NOWHERE"), END], {}, "A", "unknown state 'NOWHERE'"),
        ([task("A"), END], {"events": ["approved"]}, "approved", "no state handles"),
        (
            [
                task(
                    "A",
                    transitions=[
                        {"event": "approved", "target": "END"},
                        {"event": "done", "target": "END"},
                    ],
                ),
                END,
            ],
            {},
            "A",
            "not declared",
        ),
        ([task("A", compensation=None), END], {}, "A", "no compensation"),
        ([task("A", action="nope"), END], {}, "A", "action 'nope' is not bound"),
        (
            [
                task(
                    "A",
                    transitions=[
                        {"event": "done", "target": "B"},
                        {"event": "failed", "target": "END"},
                    ],
                ),
                task("B", target="A"),
                END,
            ],
            {},
            "A",
            "loop with no retry bound",
        ),
        ([task("A"), END], {"initial": "X"}, "X", "initial state is not defined"),
        ([task("A", transitions=[{"event": "failed", "target": "END"}]), END], {}, "A", "'done'"),
        (
            [
                {
                    "name": "A",
                    "kind": "parallel",
                    "branches": ["B"],
                    "transitions": [{"event": "done", "target": "END"}],
                },
                task("B"),
                END,
            ],
            {},
            "A",
            "at least two branches",
        ),
        (
            [task("A", transitions=[{"event": "done", "target": "END", "guard": "rich"}]), END],
            {},
            "A",
            "guard 'rich' is not bound",
        ),
        (
            [
                task("A"),
                {
                    "name": "END",
                    "kind": "succeed",
                    "transitions": [{"event": "done", "target": "A"}],
                },
            ],
            {},
            "END",
            "terminal",
        ),
    ],
    ids=[
        "unreachable-state",
        "unknown-target",
        "unhandled-event",
        "undeclared-event",
        "side-effect-without-compensation",
        "unbound-action",
        "unbounded-loop",
        "unknown-initial",
        "task-without-done",
        "parallel-with-one-branch",
        "unbound-guard",
        "terminal-with-transitions",
    ],
)
def test_invalid_definitions_name_the_culprit(states, kwargs, culprit, message):
    with pytest.raises(DefinitionError) as raised:
        machine(states, **kwargs)
    assert raised.value.culprit == culprit
    assert message in str(raised.value)


def test_pivot_needs_no_compensation_and_bounded_loops_are_fine():
    looping = [
        task("A", target="B"),
        task(
            "B",
            target="A",
            max_visits=3,
            transitions=[{"event": "done", "target": "A"}, {"event": "failed", "target": "END"}],
        ),
        END,
    ]
    assert machine([task("A", compensation=None, pivot=True), END])
    assert machine(looping)


def test_duplicate_state_names_are_rejected():
    with pytest.raises(ValidationError, match="duplicate state names: A"):
        machine([task("A"), task("A"), END])


def test_loading_from_yaml(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: m\ninitial: A\nstates:\n"
        "  - {name: A, kind: task, action: work, compensation: undo,\n"
        "     transitions: [{event: done, target: END}]}\n"
        "  - {name: END, kind: succeed}\n"
    )
    definition = StateMachineDefinition.from_file(path)
    assert Machine(definition, ACTIONS).definition.state("A").compensation == "undo"

"""Render a declared saga as a Mermaid ``stateDiagram-v2``, so the UI and the docs show the same
machine the runner runs, with an instance's current and visited states highlighted.

Transitions are labelled with their event (and ``[guard]``); a ``parallel`` state is a composite
state with one concurrent region per branch; terminal states end in ``[*]``; each ``fail`` state
leads into the compensation chain: the ``UNDO_<STEP>`` pseudo-states of every compensable step,
newest first, labelled ``compensate`` and drawn dashed, ending in ``COMPENSATED`` (or
``COMPENSATION_FAILED``). At run time only the steps actually completed are undone.
"""

from __future__ import annotations

from collections.abc import Iterable

from segue.statemachine.definition import State, StateMachineDefinition
from segue.statemachine.machine import COMPENSATED, COMPENSATION_FAILED, undo_state

CLASS_DEFS = (
    "classDef current fill:#fde68a,stroke:#b45309,stroke-width:3px",
    "classDef visited fill:#dcfce7,stroke:#15803d",
    "classDef compensation fill:#fee2e2,stroke:#b91c1c,stroke-dasharray:5",
)


def to_mermaid(
    definition: StateMachineDefinition,
    *,
    current: str | None = None,
    visited: Iterable[str] = (),
) -> str:
    """The Mermaid text; ``current`` and ``visited`` name states (pseudo-states included) to
    highlight; names the diagram doesn't contain are ignored (and Mermaid doesn't style states
    inside a composite, so a running parallel branch shows through its parallel state)."""
    branch_names = {b for state in definition.states for b in state.branches}
    lines = ["stateDiagram-v2", f"    [*] --> {definition.initial}"]
    for state in definition.states:
        if state.name in branch_names:
            continue
        lines += _declare(state, definition)
    for state in definition.states:
        if state.name in branch_names:
            continue
        for transition in state.transitions:
            label = transition.event + (f" [{transition.guard}]" if transition.guard else "")
            lines.append(f"    {state.name} --> {transition.target} : {label}")
        if state.terminal:
            lines.append(f"    {state.name} --> [*]")
    undo = [undo_state(name) for name in reversed(compensable_in_order(definition))]
    if undo and any(state.kind == "fail" for state in definition.states):
        lines += _compensation(definition, undo)
    names = _declared(definition, undo)
    lines += [f"    {line}" for line in CLASS_DEFS]
    if undo:
        lines.append(f"    class {','.join(undo)} compensation")
    seen = [name for name in dict.fromkeys(visited) if name in names and name != current]
    if seen:
        lines.append(f"    class {','.join(seen)} visited")
    if current in names:
        lines.append(f"    class {current} current")
    return "\n".join(lines) + "\n"


def compensable_in_order(definition: StateMachineDefinition) -> list[str]:
    """Steps with a compensation in the order a run meets them (branches where the parallel is).

    :param definition: the machine.
    """
    order: list[str] = []
    seen: set[str] = set()
    frontier = [definition.initial]
    while frontier:
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        state = definition.state(name)
        for step in (state, *(definition.state(b) for b in state.branches)):
            if step.compensation and step.name not in order:
                order.append(step.name)
        frontier += [t.target for t in state.transitions]
    return order


def _declare(state: State, definition: StateMachineDefinition) -> list[str]:
    lines = [f"    state {state.name}"]
    if state.kind == "parallel":
        lines = [f"    state {state.name} {{"]
        for i, branch in enumerate(state.branches):
            if i:
                lines.append("        --")
            lines += [
                f"        state {branch}",
                f"        [*] --> {branch}",
                f"        {branch} --> [*]",
            ]
            lines += _describe(definition.state(branch), indent="        ")
        lines.append("    }")
    return lines + _describe(state, indent="    ")


def _describe(state: State, *, indent: str) -> list[str]:
    text = " ".join(state.description.split()).replace(":", " -")
    return [f"{indent}{state.name} : {text}"] if text else []


def _compensation(definition: StateMachineDefinition, undo: list[str]) -> list[str]:
    lines = [f"    state {name}" for name in (*undo, COMPENSATED, COMPENSATION_FAILED)]
    for state in definition.states:
        if state.kind == "fail":
            lines.append(f"    {state.name} --> {undo[0]} : compensate")
    for name, following in zip(undo, [*undo[1:], COMPENSATED], strict=True):
        lines.append(f"    {name} --> {following} : compensate")
        lines.append(f"    {name} --> {COMPENSATION_FAILED} : failed")
    lines += [f"    {COMPENSATED} --> [*]", f"    {COMPENSATION_FAILED} --> [*]"]
    return lines


def _declared(definition: StateMachineDefinition, undo: list[str]) -> set[str]:
    extra = (*undo, COMPENSATED, COMPENSATION_FAILED) if undo else ()
    return {*definition.state_names, *extra}

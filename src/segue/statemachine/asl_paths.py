"""Which compensable steps are completed on entering each state, known statically.

ASL has no runtime stack of completed steps, so the export (``segue.statemachine.asl``) spells
each compensation chain out; this walks the graph from the initial state to find them.
"""

from __future__ import annotations

from collections.abc import Sequence

from segue.statemachine.asl_check import AslError
from segue.statemachine.definition import State, StateMachineDefinition

Stack = tuple[str, ...]  # completed compensable steps, oldest first


def completed_steps(definition: StateMachineDefinition) -> dict[str, Stack]:
    """For each state reached by transitions, the compensable steps completed on entering it
    (oldest first); raises AslError when different paths disagree.

    :param definition: the machine.
    """
    seen: dict[str, set[Stack]] = {}
    frontier: list[tuple[str, Stack]] = [(definition.initial, ())]
    while frontier:
        name, stack = frontier.pop()
        if stack in seen.setdefault(name, set()):
            continue
        seen[name].add(stack)
        state = definition.state(name)
        for transition in state.transitions:
            frontier.append(
                (transition.target, steps_after(definition, state, transition.event, stack))
            )
    result: dict[str, Stack] = {}
    for name in definition.state_names:
        stacks = sorted(seen.get(name, ()))
        if len(stacks) > 1 and definition.state(name).kind != "fail":
            raise AslError(
                f"{name}: reached with different completed steps {stacks}; ASL needs one "
                "static compensation path"
            )
        if stacks:
            result[name] = stacks[0]
    return result


def steps_after(
    definition: StateMachineDefinition, state: State, event: str, stack: Stack
) -> Stack:
    """The completed compensable steps after ``state`` fired ``event``."""
    if state.kind == "task" and event != "failed" and event != "timeout":
        return _push(stack, [state])
    if state.kind == "parallel":  # on failure we can't know which branches finished: all
        return _push(stack, [definition.state(branch) for branch in state.branches])
    return stack


def _push(stack: Stack, states: Sequence[State]) -> Stack:
    names = [s.name for s in states if s.compensation and s.name not in stack]
    return (*stack, *names)

"""Checks run when a machine is built; each error names the culprit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from segue.statemachine.definition import BUILTIN_EVENTS, State, StateMachineDefinition


class DefinitionError(ValueError):
    """The definition is invalid; ``culprit`` names the state, event or action at fault."""

    def __init__(self, culprit: str, message: str) -> None:
        super().__init__(f"{culprit}: {message}")
        self.culprit = culprit


def validate(
    definition: StateMachineDefinition,
    actions: Iterable[str] = (),
    guards: Iterable[str] = (),
) -> None:
    """Raise DefinitionError for the first problem found (nothing when the machine is sound).

    :param definition: the machine.
    :param actions: the actions that exist: each one named must be here.
    :param guards: the guards that exist: each one named must be here.
    """
    names = set(definition.state_names)
    if definition.initial not in names:
        raise DefinitionError(definition.initial, "initial state is not defined")
    for state in definition.states:
        _check_state(state, names, definition)
    _check_bindings(definition, set(actions), set(guards))
    _check_events(definition)
    _check_reachable(definition)
    _check_loops(definition)


def _check_state(state: State, names: set[str], definition: StateMachineDefinition) -> None:
    for transition in state.transitions:
        if transition.target not in names:
            raise DefinitionError(
                state.name,
                f"transition on {transition.event!r} goes to unknown state {transition.target!r}",
            )
    if state.terminal:
        if state.transitions or state.action:
            raise DefinitionError(state.name, "a terminal state has no action and no transitions")
        return
    if not state.transitions:
        raise DefinitionError(state.name, "a non-terminal state needs transitions")
    if state.kind == "task":
        if not state.action:
            raise DefinitionError(state.name, "a task state needs an action")
        if state.side_effects and not state.compensation and not state.pivot:
            raise DefinitionError(
                state.name, "has side effects but no compensation; add one or mark it pivot"
            )
        if not state.targets("done"):
            raise DefinitionError(state.name, "a task state needs a transition on 'done'")
    if state.kind == "parallel":
        if len(state.branches) < 2:
            raise DefinitionError(state.name, "a parallel state needs at least two branches")
        for branch in state.branches:
            if branch not in names:
                raise DefinitionError(state.name, f"branch {branch!r} is not a defined state")
            if definition.state(branch).kind != "task":
                raise DefinitionError(state.name, f"branch {branch!r} must be a task state")
    if state.kind == "wait" and state.action:
        raise DefinitionError(state.name, "a wait state has no action")


def _check_bindings(
    definition: StateMachineDefinition, actions: set[str], guards: set[str]
) -> None:
    for state in definition.states:
        for name in filter(None, (state.action, state.compensation)):
            if name not in actions:
                raise DefinitionError(state.name, f"action {name!r} is not bound to a function")
        for transition in state.transitions:
            if transition.guard and transition.guard not in guards:
                raise DefinitionError(
                    state.name, f"guard {transition.guard!r} is not bound to a function"
                )


def _check_events(definition: StateMachineDefinition) -> None:
    declared = set(definition.events)
    used = {t.event for s in definition.states for t in s.transitions}
    for state in definition.states:
        for transition in state.transitions:
            if transition.event not in declared and transition.event not in BUILTIN_EVENTS:
                raise DefinitionError(
                    state.name, f"event {transition.event!r} is not declared in events"
                )
    for event in sorted(declared - used):
        raise DefinitionError(event, "event is declared but no state handles it")


def _successors(definition: StateMachineDefinition) -> Mapping[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for state in definition.states:
        graph[state.name] = {t.target for t in state.transitions} | set(state.branches)
    return graph


def _check_reachable(definition: StateMachineDefinition) -> None:
    graph = _successors(definition)
    seen, frontier = {definition.initial}, [definition.initial]
    while frontier:
        for nxt in graph[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    for name in definition.state_names:
        if name not in seen:
            raise DefinitionError(name, f"state is unreachable from {definition.initial!r}")


def _check_loops(definition: StateMachineDefinition) -> None:
    """Every cycle must pass through a state with ``max_visits`` (a retry bound)."""
    graph = {
        name: {n for n in targets if definition.state(n).max_visits is None}
        for name, targets in _successors(definition).items()
        if definition.state(name).max_visits is None
    }
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        visiting.add(name)
        for nxt in sorted(graph.get(name, ())):
            if nxt in visiting:
                loop = [*path[path.index(nxt) :], nxt] if nxt in path else [name, nxt]
                raise DefinitionError(
                    nxt, f"loop with no retry bound: {' -> '.join(loop)} (set max_visits)"
                )
            if nxt not in done:
                visit(nxt, [*path, nxt])
        visiting.discard(name)
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])

"""A definition bound to the plain functions that do its work, checked as a whole."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.validation import validate

COMPENSATED = "COMPENSATED"
COMPENSATION_FAILED = "COMPENSATION_FAILED"


def undo_state(step: str) -> str:
    """The name of the pseudo-state in which ``step`` is being compensated."""
    return f"UNDO_{step}"


@dataclass(frozen=True)
class ActionContext:
    """What an action sees: the instance, its state, its data (a copy) and the attempt."""

    instance_id: str
    state: str
    data: dict[str, Any]
    attempt: int
    error: str | None = None  # during compensation: why the saga failed
    visit: int = 1  # how many times the instance entered ``state`` (ids of sent commands)


@dataclass(frozen=True)
class Outcome:
    """An action's result: the event it raises (``done`` by default) and data to merge."""

    event: str = "done"
    data: Mapping[str, Any] = field(default_factory=dict)


Action = Callable[[ActionContext], Outcome | Mapping[str, Any] | None]
Guard = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class Machine:
    """The definition plus its actions and guards by name; validated on construction."""

    definition: StateMachineDefinition
    actions: Mapping[str, Action]
    guards: Mapping[str, Guard] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate(self.definition, self.actions.keys(), self.guards.keys())

    @property
    def name(self) -> str:
        """The machine's name (its definition's)."""
        return self.definition.name

"""The declarative state-machine definition (pydantic, frozen; written in Python or loaded
from YAML/JSON).

A state is one of:

- ``task``: runs an action (a name bound to a plain function when the machine is built), with
  its compensation declared right next to it, a retry policy and an optional timeout;
- ``wait``: waits for an external event, or for ``timeout_seconds`` (then fires ``timeout``);
- ``parallel``: runs the task states named in ``branches`` side by side and joins them
  (``done`` when all succeeded, ``failed`` when one failed for good);
- ``succeed`` / ``fail``: terminal. Entering a ``fail`` state compensates every completed step
  in reverse order; the instance ends ``compensated`` (or ``failed`` when there was nothing to
  undo, or ``compensation_failed`` when a compensation kept failing).

Task outcomes are events: ``done`` when the action returns, ``failed`` when it raised a
non-retryable error or exhausted its retries, ``timeout`` when it ran past its timeout.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

BUILTIN_EVENTS = ("done", "failed", "timeout")
Kind = Literal["task", "wait", "parallel", "succeed", "fail"]


class Frozen(BaseModel):
    """Base of the definition's models: immutable values, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(Frozen):
    """How often and how patiently a state's action is retried on a retryable error."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    backoff_seconds: float = Field(default=1.0, ge=0)
    backoff_rate: float = Field(default=2.0, ge=1.0)
    max_delay_seconds: float = Field(default=60.0, ge=0)
    jitter: float = Field(default=0.0, ge=0, le=1, description="± fraction of each delay")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        base = min(
            self.backoff_seconds * self.backoff_rate ** (attempt - 1), self.max_delay_seconds
        )
        if self.jitter and base:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(base, 0.0)


class Transition(Frozen):
    """On ``event``, go to ``target`` if ``guard`` (a named predicate over the data) allows."""

    event: str
    target: str
    guard: str | None = None


class State(Frozen):
    """One state: its kind, action and compensation, retry policy and transitions."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    kind: Kind
    action: str | None = None
    compensation: str | None = None
    pivot: bool = Field(default=False, description="Point of no return: needs no compensation.")
    side_effects: bool = True
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_visits: int | None = Field(default=None, ge=1, description="Bound on loops through here.")
    branches: tuple[str, ...] = ()
    transitions: tuple[Transition, ...] = ()
    description: str = ""

    @property
    def terminal(self) -> bool:
        """True for succeed and fail states."""
        return self.kind in ("succeed", "fail")

    def targets(self, event: str) -> list[Transition]:
        """The transitions ``event`` takes from this state (several when guarded).

        :param event: the event's name.
        """
        return [t for t in self.transitions if t.event == event]


class StateMachineDefinition(Frozen):
    """A whole machine. Build it through :func:`segue.statemachine.validation.validated` (or
    ``Machine``) to get the checks with errors that name the culprit."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
    version: int = Field(default=1, ge=1)
    initial: str
    events: tuple[str, ...] = ()
    states: tuple[State, ...]
    description: str = ""

    @model_validator(mode="after")
    def _unique_names(self) -> StateMachineDefinition:
        names = [state.name for state in self.states]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate state names: {', '.join(duplicates)}")
        return self

    def state(self, name: str) -> State:
        """The state of that name (KeyError if none).

        :param name: the state's name.
        """
        for state in self.states:
            if state.name == name:
                return state
        raise KeyError(name)

    @property
    def state_names(self) -> list[str]:
        """Every state's name, in definition order."""
        return [state.name for state in self.states]

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> StateMachineDefinition:
        """A definition from parsed YAML or JSON (not yet validated as a machine).

        :param data: the definition's keys and values.
        """
        return cls.model_validate(data)

    @classmethod
    def from_file(cls, path: str | Path) -> StateMachineDefinition:
        """Load a YAML (.yaml/.yml) or JSON definition file.

        :param path: the file.
        """
        text = Path(path).read_text()
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return cls.model_validate(data)

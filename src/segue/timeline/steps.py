"""The path an order took as a row of steps, and the step it is at now (for the order page).

Derived from a timeline's entries, whatever the path: a DAG run's tasks (each with its latest
state; the current step is the first not done), else a saga's states in the order visited,
else the events in the order they happened (the current step is the last).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from segue.timeline.model import Entry, Timeline

DONE = frozenset({"success", "skipped"})


class Step(BaseModel):
    """One step of the path.

    :param name: the task, state or event type.
    :param state: its state, when known (a task's latest try).
    :param current: True for the step the order is at now (or ended at).
    """

    model_config = ConfigDict(frozen=True)

    name: str
    state: str | None = None
    current: bool = False


def path_steps(timeline: Timeline) -> tuple[Step, ...]:
    """The steps of the order's path, one of them current; empty when nothing tells them.

    :param timeline: the order's timeline.
    """
    entries = [timed.entry for timed in timeline.entries if not timed.entry.missing]
    runs = [e for e in entries if e.kind == "dag run" and e.details.get("tasks")]
    if runs:
        return _tasks(runs[-1])
    visited = [e.state for e in entries if e.source == "saga" and e.state]
    if visited:
        return _mark_last(list(dict.fromkeys(visited)))
    events = [str(e.details.get("type", e.title)).rsplit(".", 1)[-1] for e in entries
              if e.source == "event"]  # fmt: skip
    return _mark_last(events)


def _tasks(run: Entry) -> tuple[Step, ...]:
    tasks = [(str(name), state) for name, state in run.details["tasks"]]
    current = next((i for i, (_, state) in enumerate(tasks) if state not in DONE), len(tasks) - 1)
    return tuple(
        Step(name=name, state=state, current=i == current) for i, (name, state) in enumerate(tasks)
    )


def _mark_last(names: list[str]) -> tuple[Step, ...]:
    return tuple(Step(name=name, current=i == len(names) - 1) for i, name in enumerate(names))

"""Structural checks of an Amazon States Language document, as Step Functions would refuse it.

Used on every export (``segue.statemachine.asl``) so a definition that exports is one AWS accepts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

STATE_TYPES = ("Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")


class AslError(ValueError):
    """The definition can't be expressed in ASL, or an ASL document is structurally broken."""


def check_asl(asl: Mapping[str, Any]) -> None:
    """Raise AslError listing every structural problem: a missing StartAt, a Next/Default/Catch
    target that doesn't exist in its scope, a state with both or neither of Next and End, an
    unreachable state, a duplicate name, ``States.ALL`` not alone and last.

    :param asl: an Amazon States Language document.
    """
    problems: list[str] = []
    names: Counter[str] = Counter()
    _check_scope(asl, "machine", problems, names)
    problems += [f"state name {n!r} used {c} times" for n, c in sorted(names.items()) if c > 1]
    if problems:
        raise AslError("; ".join(problems))


def _check_scope(
    scope: Mapping[str, Any], where: str, problems: list[str], names: Counter[str]
) -> None:
    states = scope.get("States")
    start = scope.get("StartAt")
    if not isinstance(states, Mapping) or not states:
        problems.append(f"{where}: no States")
        return
    if not isinstance(start, str) or start not in states:
        problems.append(f"{where}: StartAt {start!r} is not a state")
    graph: dict[str, list[str]] = {}
    for name, state in states.items():
        names[name] += 1
        kind = state.get("Type")
        targets = [state[k] for k in ("Next", "Default") if k in state]
        targets += [r.get("Next") for r in state.get("Choices", ())]
        targets += [c.get("Next") for c in state.get("Catch", ())]
        graph[name] = [t for t in targets if isinstance(t, str)]
        problems += [f"{name}: goes to unknown state {t!r}" for t in targets if t not in states]
        if kind not in STATE_TYPES:
            problems.append(f"{name}: unknown Type {kind!r}")
        elif kind in ("Succeed", "Fail"):
            if "Next" in state or "End" in state:
                problems.append(f"{name}: a {kind} state has no Next or End")
        elif kind == "Choice":
            if not state.get("Choices") or "End" in state or "Next" in state:
                problems.append(f"{name}: a Choice needs Choices and no Next or End")
        elif ("Next" in state) == bool(state.get("End")):
            problems.append(f"{name}: needs exactly one of Next or End")
        if kind == "Task" and not state.get("Resource"):
            problems.append(f"{name}: a Task needs a Resource")
        for key in ("Retry", "Catch"):
            errors = [tuple(r.get("ErrorEquals", ())) for r in state.get(key, ())]
            for i, equals in enumerate(errors):
                if not equals:
                    problems.append(f"{name}: {key} entry without ErrorEquals")
                if "States.ALL" in equals and (len(equals) > 1 or i != len(errors) - 1):
                    problems.append(f"{name}: States.ALL must be alone in the last {key} entry")
        for i, branch in enumerate(state.get("Branches", ())):
            _check_scope(branch, f"{name}.Branches[{i}]", problems, names)
    seen, frontier = set(), [start] if start in states else []
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier += [t for t in graph.get(current, ()) if t in states]
    problems += [f"{name}: unreachable from StartAt" for name in states if name not in seen]

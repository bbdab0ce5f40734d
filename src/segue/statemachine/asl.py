"""Export a declared saga to Amazon States Language, so the same definition can run on AWS Step
Functions with its compensation spelled out as states (``UNDO_<STEP>`` chains).

Mapping, mirroring the runner:

- ``task`` → ``Task``: ``Resource`` from ``resource_for(action)``, ``Retry`` from its policy
  (ASL counts retries, so ``MaxAttempts`` is ``max_attempts - 1``; seconds round up to whole
  seconds; any jitter becomes ``JitterStrategy: FULL``, AWS's only kind), ``TimeoutSeconds``,
  and ``Catch``: ``States.Timeout`` to the ``timeout`` target, ``States.ALL`` to the ``failed``
  target. The action's Lambda gets the state data and returns it updated; a guard is a boolean
  field it writes under ``$.guards`` (several or guarded ``done`` transitions become a ``Choice``
  named ``<STATE>_DONE`` testing ``$.guards.<guard>``).
- Every edge into a ``fail`` state goes through the compensation chain of the steps completed on
  the way there (known statically by walking the graph from the initial state): ``UNDO_<STEP>``
  tasks in reverse order, ending in ``COMPENSATED`` (``Fail``, error ``Compensated``); each
  ``UNDO_`` catches to ``COMPENSATION_FAILED`` once its retries (the step's policy, at least three
  attempts, on any error, as the runner does) are spent. With nothing to undo the edge goes to the
  fail state itself. Like the runner, an event no transition allows (no ``failed`` transition, no
  guard true) enters the first ``fail`` state.
- ``parallel`` → ``Parallel``: one single-state branch per task (``End: true``), results kept under
  ``$.branches.<STATE>``. Step Functions stops the sibling branches when one fails and doesn't say
  which had finished, so a failure inside a ``Parallel`` compensates *every* compensable branch:
  compensations must be idempotent and harmless for a step that never ran (ours are).
- ``wait`` with only a ``timeout`` → ``Wait`` (``Seconds``). A wait for external events → a task
  token ``Task`` on ``arn:aws:states:::sqs:sendMessage.waitForTaskToken`` (queue URL from the
  execution input's ``event_queue_url``), ``TimeoutSeconds`` if set, result in ``$.event``; the
  sender calls ``SendTaskSuccess`` with ``{"name": <event>}`` and a ``Choice`` ``<STATE>_EVENT``
  routes on it (an unknown event waits again). Wiring that sender is out of scope here.
- ``succeed`` → ``Succeed``; ``fail`` → ``Fail``.

What ASL cannot express is refused with :class:`AslError` (custom events on a task, a state
reached with different sets of completed steps, a branch task also used on its own). Not
mirrored: ``max_visits`` bounds (ASL has no visit counter).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from segue.statemachine.asl_check import AslError, check_asl
from segue.statemachine.asl_paths import Stack, completed_steps, steps_after
from segue.statemachine.definition import RetryPolicy, State, StateMachineDefinition
from segue.statemachine.machine import COMPENSATED, COMPENSATION_FAILED, undo_state
from segue.statemachine.runner import COMPENSATION_RETRY

WAIT_FOR_EVENT_RESOURCE = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
EVENT_QUEUE_URL_PATH = "$$.Execution.Input.event_queue_url"


def lambda_arn(region: str, account: str) -> Callable[[str], str]:
    """A ``resource_for`` that maps each action to a Lambda function named after it.

    :param region: the AWS region.
    :param account: the AWS account id.
    """
    return lambda action: f"arn:aws:lambda:{region}:{account}:function:{action}"


def to_asl(
    definition: StateMachineDefinition,
    *,
    resource_for: Callable[[str], str],
    retryable_errors: Sequence[str] = ("States.ALL",),
) -> dict[str, Any]:
    """The ASL document (a dict in a stable key order) for ``definition``; checked before return.

    ``retryable_errors`` are the error names retried per the policy; Lambda reports an
    exception's class name, so list every retryable class, not only a base class.
    """
    asl = _Exporter(definition, resource_for, tuple(retryable_errors)).export()
    check_asl(asl)
    return asl


def to_asl_json(
    definition: StateMachineDefinition,
    *,
    resource_for: Callable[[str], str],
    retryable_errors: Sequence[str] = ("States.ALL",),
    indent: int | None = 2,
) -> str:
    """:func:`to_asl` as JSON text, ready for ``CreateStateMachine``.

    :param definition: the machine.
    :param resource_for: the task resource (ARN) of an action.
    :param retryable_errors: the errors each Retry block matches.
    :param indent: JSON indent (None: one line).
    """
    asl = to_asl(definition, resource_for=resource_for, retryable_errors=retryable_errors)
    return json.dumps(asl, indent=indent)


class _Exporter:
    """Builds the ASL states of one definition; holds the compensation chains it has emitted."""

    def __init__(
        self,
        definition: StateMachineDefinition,
        resource_for: Callable[[str], str],
        retryable_errors: tuple[str, ...],
    ) -> None:
        self.definition = definition
        self.resource_for = resource_for
        self.retryable_errors = retryable_errors
        self.states: dict[str, dict[str, Any]] = {}
        self.extra: dict[str, dict[str, Any]] = {}
        self.chains: dict[Stack, str] = {}
        self.entry: dict[str, Stack] = {}

    def export(self) -> dict[str, Any]:
        definition = self.definition
        self.entry = entry = completed_steps(definition)
        branch_only = {b for s in definition.states for b in s.branches}
        for name in sorted(branch_only & set(entry)):
            raise AslError(f"{name}: a parallel branch can't also be entered by a transition")
        for state in definition.states:
            if state.name in entry:
                self._add(state.name, self._state(state, entry[state.name]))
        for name, body in self.extra.items():
            self._add(name, body)
        comment = f"{definition.name} v{definition.version}"
        if definition.description:
            comment += f": {definition.description}"
        return {"Comment": comment, "StartAt": definition.initial, "States": self.states}

    def _add(self, name: str, body: dict[str, Any]) -> None:
        if name in self.states:
            raise AslError(f"{name}: generated state name collides with a declared state")
        self.states[name] = body

    def _state(self, state: State, stack: Stack) -> dict[str, Any]:
        if state.kind == "succeed":
            return {"Type": "Succeed"}
        if state.kind == "fail":
            cause = state.description or f"{self.definition.name} ended in {state.name}"
            return {"Type": "Fail", "Error": state.name, "Cause": cause}
        if state.kind == "wait":
            return self._wait(state, stack)
        if state.kind == "parallel":
            body: dict[str, Any] = {"Type": "Parallel", **_comment(state)}
            body["Branches"] = [
                {"StartAt": b, "States": {b: self._task(self.definition.state(b), branch=True)}}
                for b in state.branches
            ]
            body["ResultPath"] = f"$.branches.{state.name}"
        else:
            body = self._task(state, branch=False)
            bad = {t.event for t in state.transitions} - {"done", "failed", "timeout"}
            if bad:
                raise AslError(f"{state.name}: custom events on a task can't be exported {bad}")
        failure = self._on(state, "failed", steps_after(self.definition, state, "failed", stack))
        catch = []
        if state.targets("timeout"):
            timeout = self._on(
                state, "timeout", steps_after(self.definition, state, "timeout", stack)
            )
            catch.append(_catcher("States.Timeout", timeout))
        catch.append(_catcher("States.ALL", failure))
        body["Catch"] = catch
        body["Next"] = self._on(state, "done", steps_after(self.definition, state, "done", stack))
        return body

    def _task(self, state: State, *, branch: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"Type": "Task", **_comment(state)}
        body.update(self._invoke(str(state.action)))
        if state.timeout_seconds:
            body["TimeoutSeconds"] = math.ceil(state.timeout_seconds)
        retry = _retry(state.retry, self.retryable_errors)
        if retry:
            body["Retry"] = retry
        if branch:
            body["End"] = True
        return body

    def _invoke(self, action: str) -> dict[str, Any]:
        resource = self.resource_for(action)
        if resource.startswith(LAMBDA_INVOKE):
            return {
                "Resource": resource,
                "Parameters": {"FunctionName": action, "Payload.$": "$"},
                "OutputPath": "$.Payload",
            }
        return {"Resource": resource}

    def _wait(self, state: State, stack: Stack) -> dict[str, Any]:
        timeout = self._on(state, "timeout", stack) if state.targets("timeout") else None
        events = [t for t in state.transitions if t.event != "timeout"]
        if not events:
            if not state.timeout_seconds or not timeout:
                raise AslError(f"{state.name}: a wait with no events needs timeout_seconds")
            seconds = math.ceil(state.timeout_seconds)
            return {"Type": "Wait", **_comment(state), "Seconds": seconds, "Next": timeout}
        body: dict[str, Any] = {"Type": "Task", **_comment(state)}
        body["Resource"] = WAIT_FOR_EVENT_RESOURCE
        body["Parameters"] = {
            "QueueUrl.$": EVENT_QUEUE_URL_PATH,
            "MessageBody": {
                "state": state.name,
                "events": sorted({t.event for t in events}),
                "data.$": "$",
                "taskToken.$": "$$.Task.Token",
            },
        }
        if state.timeout_seconds:
            body["TimeoutSeconds"] = math.ceil(state.timeout_seconds)
        body["ResultPath"] = "$.event"
        if timeout:
            body["Catch"] = [_catcher("States.Timeout", timeout)]
        rules = [
            _rule(
                _all(_string("$.event.name", t.event), *_guard(t.guard)), self._to(t.target, stack)
            )
            for t in events
        ]
        choice = f"{state.name}_EVENT"
        self.extra[choice] = {"Type": "Choice", "Choices": rules, "Default": state.name}
        body["Next"] = choice
        return body

    def _on(self, state: State, event: str, stack: Stack) -> str:
        """Where ``event`` leads: a target, a Choice over the guards, or (no transition allows
        it) the first fail state."""
        transitions = state.targets(event)
        if not transitions:
            return self._failing(stack)
        if len(transitions) == 1 and not transitions[0].guard:
            return self._to(transitions[0].target, stack)
        rules = [
            _rule(_all(*_guard(t.guard)), self._to(t.target, stack)) for t in transitions if t.guard
        ]
        fallback = next((t for t in transitions if not t.guard), None)
        default = self._to(fallback.target, stack) if fallback else self._failing(stack)
        choice: dict[str, Any] = {"Type": "Choice", "Choices": rules, "Default": default}
        name = f"{state.name}_{event.upper()}"
        self.extra[name] = choice
        return name

    def _failing(self, stack: Stack) -> str:
        """The runner's fallback: the first fail state (compensating), else a bare failure."""
        fail = next((s.name for s in self.definition.states if s.kind == "fail"), None)
        if fail:
            if not stack and fail not in self.entry:  # not reached by any transition
                self.extra.setdefault(fail, self._state(self.definition.state(fail), ()))
            return self._to(fail, stack)
        if stack:
            return self._chain(stack)
        self.extra.setdefault("FAILED", {"Type": "Fail", "Error": "FAILED", "Cause": "failed"})
        return "FAILED"

    def _to(self, target: str, stack: Stack) -> str:
        """Entering a fail state compensates first."""
        if self.definition.state(target).kind == "fail" and stack:
            return self._chain(stack)
        return target

    def _chain(self, stack: Stack) -> str:
        """The head of the UNDO_ chain undoing ``stack`` newest first (memoized, shared tails)."""
        if stack in self.chains:
            return self.chains[stack]
        step = self.definition.state(stack[-1])
        following = self._chain(stack[:-1]) if len(stack) > 1 else COMPENSATED
        name, n = undo_state(step.name), 1
        while name in self.extra or name in self.definition.state_names:
            n += 1
            name = f"{undo_state(step.name)}_{n}"
        body: dict[str, Any] = {"Type": "Task", "Comment": f"compensate {step.name}"}
        body.update(self._invoke(str(step.compensation)))
        if step.timeout_seconds:
            body["TimeoutSeconds"] = math.ceil(step.timeout_seconds)
        body["ResultPath"] = None  # keep the saga data for the next compensation
        policy = step.retry or COMPENSATION_RETRY
        attempts = max(policy.max_attempts, COMPENSATION_RETRY.max_attempts)
        body["Retry"] = _retry(
            policy.model_copy(update={"max_attempts": attempts}), ("States.ALL",)
        )
        body["Catch"] = [_catcher("States.ALL", COMPENSATION_FAILED)]
        body["Next"] = following
        self.extra[name] = body
        self.chains[stack] = name
        self.extra.setdefault(
            COMPENSATED, {"Type": "Fail", "Error": "Compensated", "Cause": "compensation ran"}
        )
        self.extra.setdefault(
            COMPENSATION_FAILED,
            {"Type": "Fail", "Error": "CompensationFailed", "Cause": "a compensation failed"},
        )
        return name


def _comment(state: State) -> dict[str, str]:
    return {"Comment": state.description} if state.description else {}


def _retry(policy: RetryPolicy | None, errors: tuple[str, ...]) -> list[dict[str, Any]]:
    """One retrier from the policy (none when it allows a single attempt)."""
    if policy is None or policy.max_attempts <= 1:
        return []
    retrier: dict[str, Any] = {
        "ErrorEquals": list(errors),
        "IntervalSeconds": max(1, math.ceil(policy.backoff_seconds)),
        "MaxAttempts": policy.max_attempts - 1,
        "BackoffRate": float(policy.backoff_rate),
    }
    if policy.max_delay_seconds >= 1:
        retrier["MaxDelaySeconds"] = math.ceil(policy.max_delay_seconds)
    if policy.jitter > 0:
        retrier["JitterStrategy"] = "FULL"
    return [retrier]


def _catcher(error: str, target: str) -> dict[str, Any]:
    return {"ErrorEquals": [error], "ResultPath": "$.error", "Next": target}


def _guard(guard: str | None) -> list[dict[str, Any]]:
    """A guard is true when ``$.guards.<guard>`` is present and true."""
    if not guard:
        return []
    path = f"$.guards.{guard}"
    return [{"Variable": path, "IsPresent": True}, {"Variable": path, "BooleanEquals": True}]


def _string(path: str, value: str) -> dict[str, Any]:
    return {"Variable": path, "StringEquals": value}


def _all(*conditions: dict[str, Any]) -> dict[str, Any]:
    return conditions[0] if len(conditions) == 1 else {"And": list(conditions)}


def _rule(condition: dict[str, Any], target: str) -> dict[str, Any]:
    return {**condition, "Next": target}

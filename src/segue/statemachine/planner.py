"""Decides an instance's next transition: runs the state's action (or the next compensation) and
returns the Move to save, without saving it. The runner persists the Move (one at a time, or
several instances' together), so the decision logic is the same either way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from segue.statemachine.definition import RetryPolicy, State
from segue.statemachine.machine import (
    COMPENSATED,
    COMPENSATION_FAILED,
    ActionContext,
    Machine,
    Outcome,
    undo_state,
)
from segue.statemachine.records import COMPENSATING, RUNNING, WAITING, Instance, Move
from segue.step_runner import is_retryable

NO_RETRY = RetryPolicy(max_attempts=1)
COMPENSATION_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=1.0)


class Planner:
    """The transition rules of one machine; actions run here, persistence happens elsewhere."""

    def __init__(self, machine: Machine, clock: Callable[[], datetime], rng: random.Random) -> None:
        """A planner for one machine.

        :param machine: the machine.
        :param clock: now (timers and backoffs).
        :param rng: the backoff jitter's randomness.
        """
        self.machine = machine
        self.definition = machine.definition
        self.clock = clock
        self.rng = rng
        # Looked up on every transition: a dict instead of the definition's linear search.
        self.states = {state.name: state for state in self.definition.states}
        self.fail_state = next(
            (s.name for s in self.definition.states if s.kind == "fail"), "FAILED"
        )

    def next_move(self, instance: Instance) -> Move | None:
        """The next transition of ``instance`` (its action already run); None when final."""
        if instance.final:
            return None
        if instance.status == COMPENSATING:
            return self._compensate_next(instance)
        state = self.states[instance.state]
        if state.kind == "wait":
            return self.fire(instance, state, "timeout", self.context(instance), instance.data, 1)
        if state.kind == "parallel":
            return self._run_branches(instance, state)
        return self._run_task(instance, state)

    # --- forward steps ------------------------------------------------------------------

    def _run_task(self, instance: Instance, state: State) -> Move:
        context = self.context(instance)
        attempt = context.setdefault("attempts", {}).get(state.name, 0) + 1
        if self._timed_out(context, state):
            error = f"{state.name} timed out after {state.timeout_seconds}s"
            return self.fire(instance, state, "timeout", context, instance.data, attempt, error)
        try:
            outcome = self._call(state.action, instance, state.name, attempt)
        except Exception as exc:
            return self._on_error(instance, state, state, exc, attempt, context)
        context["attempts"][state.name] = attempt
        self._completed(context, state)
        data = {**instance.data, **outcome.data}
        return self.fire(instance, state, outcome.event, context, data, attempt)

    def _run_branches(self, instance: Instance, state: State) -> Move:
        """Run every pending branch at once (threads) and record what finished in one move;
        when all are done the next move fires ``done`` (the join). A failing branch retries or
        fails the parallel state like a task, after the others' results are kept."""
        context = self.context(instance)
        branches = context.setdefault("branches", {})
        attempts = context.setdefault("attempts", {})
        pending = [self.states[name] for name in state.branches if branches.get(name) != "done"]
        if not pending:
            return self.fire(instance, state, "done", context, instance.data, 1)
        tries = [(branch, attempts.get(branch.name, 0) + 1) for branch in pending]
        results = self._call_all(instance, tries)
        data, done, failures = dict(instance.data), [], []
        for (branch, attempt), result in zip(tries, results, strict=True):
            attempts[branch.name] = attempt
            if isinstance(result, Exception):
                failures.append((branch, attempt, result))
                continue
            branches[branch.name] = "done"
            self._completed(context, branch)
            data.update(result.data)
            done.append(branch.name)
        if failures:  # the one that can't be retried decides, if any
            branch, attempt, exc = min(failures, key=lambda f: self._retryable(f[0], f[2], f[1]))
            return self._on_error(instance, state, branch, exc, attempt, context, data)
        attempt = max(attempt for _, attempt in tries)
        return Move(state.name, RUNNING, "+".join(done) + ".done", attempt, data, context)

    def _call_all(
        self, instance: Instance, tries: list[tuple[State, int]]
    ) -> list[Outcome | Exception]:
        """Each branch's outcome or exception, in the order given; concurrently if several."""

        def call(branch: State, attempt: int) -> Outcome | Exception:
            try:
                return self._call(branch.action, instance, branch.name, attempt)
            except Exception as exc:
                return exc

        if len(tries) == 1:
            return [call(*tries[0])]
        with ThreadPoolExecutor(max_workers=len(tries), thread_name_prefix="saga-branch") as pool:
            return list(pool.map(lambda t: call(*t), tries))

    @staticmethod
    def _retryable(step: State, exc: Exception, attempt: int) -> bool:
        return is_retryable(exc) and attempt < (step.retry or NO_RETRY).max_attempts

    def _on_error(
        self,
        instance: Instance,
        state: State,
        step: State,
        exc: Exception,
        attempt: int,
        context: dict[str, Any],
        data: dict[str, Any] | None = None,
    ) -> Move:
        """Retry later within the policy, else raise ``failed`` on ``state``."""
        error = f"{step.name}: {type(exc).__name__}: {exc}"
        policy = step.retry or NO_RETRY
        data = instance.data if data is None else data
        context["attempts"][step.name] = attempt
        if self._retryable(step, exc, attempt):
            wake_at = self.clock() + timedelta(seconds=policy.delay(attempt, self.rng))
            return Move(state.name, RUNNING, "retry", attempt, data, context, wake_at, error)
        return self.fire(instance, state, "failed", context, data, attempt, error)

    def fire(
        self,
        instance: Instance,
        state: State,
        event: str,
        context: dict[str, Any],
        data: dict[str, Any],
        attempt: int,
        error: str | None = None,
    ) -> Move:
        """Take the first transition on ``event`` whose guard allows it, and enter its target."""
        for transition in state.transitions:
            if transition.event != event:
                continue
            guard = self.machine.guards.get(transition.guard) if transition.guard else None
            if guard is None or guard(data):
                return self._enter(transition.target, event, context, data, attempt, error)
        if event == "done" or event not in ("failed", "timeout"):
            error = error or f"{state.name}: no transition allows event {event!r}"
        return self.failure_move(self.fail_state, event, context, data, attempt, error)

    def _enter(
        self,
        name: str,
        event: str,
        context: dict[str, Any],
        data: dict[str, Any],
        attempt: int,
        error: str | None,
    ) -> Move:
        target = self.states[name]
        visits = context.setdefault("visits", {})
        visits[name] = visits.get(name, 0) + 1
        if target.max_visits is not None and visits[name] > target.max_visits:
            error = f"{name} entered more than {target.max_visits} times"
            return self.failure_move(self.fail_state, event, context, data, attempt, error)
        if target.kind == "fail":
            return self.failure_move(name, event, context, data, attempt, error)
        context["entered_at"] = self.clock().isoformat()
        context.get("attempts", {}).pop(name, None)
        if target.kind == "parallel":
            context["branches"] = {}
            for branch in target.branches:
                context.get("attempts", {}).pop(branch, None)
        status, wake_at = RUNNING, None
        if target.kind == "succeed":
            status = "succeeded"
        elif target.kind == "wait":
            status = WAITING
            if target.timeout_seconds:
                wake_at = self.clock() + timedelta(seconds=target.timeout_seconds)
        return Move(name, status, event, attempt, data, context, wake_at, error)

    # --- compensation -------------------------------------------------------------------

    def failure_move(
        self,
        fail_state: str,
        event: str,
        context: dict[str, Any],
        data: dict[str, Any],
        attempt: int,
        error: str | None,
    ) -> Move:
        """Enter the fail state; compensate next if any completed step has a compensation.

        :param fail_state: the state failed into.
        :param event: what made it fail.
        :param context: the instance's bookkeeping (changed in place).
        :param data: the instance's data.
        :param attempt: the attempt counted for the move.
        :param error: why, for the audit trail.
        """
        context["undo"] = list(reversed(context.get("completed", [])))
        context["undo_attempts"] = 0
        context["failure"] = error
        status = COMPENSATING if context["undo"] else "failed"
        return Move(fail_state, status, event, attempt, data, context, None, error)

    def _compensate_next(self, instance: Instance) -> Move:
        context = self.context(instance)
        undo: list[str] = context.get("undo", [])
        failure = context.get("failure")
        if not undo:
            return Move(
                COMPENSATED,
                "compensated",
                "compensation_done",
                1,
                instance.data,
                context,
                None,
                failure,
            )
        step = self.states[undo[0]]
        attempt = context.get("undo_attempts", 0) + 1
        try:
            self._call(step.compensation, instance, undo_state(step.name), attempt, failure)
        except Exception as exc:
            error = f"{undo_state(step.name)}: {type(exc).__name__}: {exc}"
            context["undo_attempts"] = attempt
            policy = step.retry or COMPENSATION_RETRY
            if attempt < max(policy.max_attempts, COMPENSATION_RETRY.max_attempts):
                wake_at = self.clock() + timedelta(seconds=policy.delay(attempt, self.rng))
                return Move(
                    instance.state,
                    COMPENSATING,
                    "compensation_retry",
                    attempt,
                    instance.data,
                    context,
                    wake_at,
                    error,
                )
            return Move(
                COMPENSATION_FAILED,
                "compensation_failed",
                "compensation_failed",
                attempt,
                instance.data,
                context,
                None,
                error,
            )
        context["undo"] = undo[1:]
        context["undo_attempts"] = 0
        context.setdefault("undone", []).append(step.name)
        return Move(
            undo_state(step.name),
            COMPENSATING,
            "compensated",
            attempt,
            instance.data,
            context,
            None,
            failure,
        )

    # --- helpers ------------------------------------------------------------------------

    def _call(
        self,
        action_name: str | None,
        instance: Instance,
        state: str,
        attempt: int,
        error: str | None = None,
    ) -> Outcome:
        action = self.machine.actions[action_name or ""]
        visit = int(instance.context.get("visits", {}).get(state, 1))
        context = ActionContext(instance.id, state, dict(instance.data), attempt, error, visit)
        result = action(context)
        if isinstance(result, Outcome):
            return result
        return Outcome(data=dict(result or {}))

    def _completed(self, context: dict[str, Any], step: State) -> None:
        completed = context.setdefault("completed", [])
        if step.compensation and step.name not in completed:
            completed.append(step.name)

    def _timed_out(self, context: dict[str, Any], state: State) -> bool:
        if not state.timeout_seconds or "entered_at" not in context:
            return False
        entered = datetime.fromisoformat(context["entered_at"])
        return self.clock() - entered > timedelta(seconds=state.timeout_seconds)

    def context(self, instance: Instance) -> dict[str, Any]:
        """A deep-enough copy of the bookkeeping (nested dicts and lists) to modify freely.

        :param instance: the saga instance.
        """
        return {
            key: (dict(value) if isinstance(value, dict) else list(value))
            if isinstance(value, dict | list)
            else value
            for key, value in instance.context.items()
        }

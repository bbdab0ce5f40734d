"""The saga engine: advances one instance one transition at a time, durably.

Every transition is saved (state, data, bookkeeping, audit record) in one transaction guarded by
the instance's version, so two workers can never both apply one. Actions run before the save:
after a crash the step runs again, which is why every action must be idempotent (the payment
steps are: their effects carry unique keys). Entering a ``fail`` state compensates the completed
steps in reverse order, one transition each, so a crash resumes at the next compensation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
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
from segue.statemachine.store import (
    COMPENSATING,
    RUNNING,
    WAITING,
    ConcurrentTransition,
    Instance,
    Move,
    SagaStore,
)
from segue.step_runner import is_retryable
from segue.store.engine import utcnow

NO_RETRY = RetryPolicy(max_attempts=1)
COMPENSATION_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=1.0)


class InvalidAction(RuntimeError):
    """The request does not fit the instance's current state (e.g. compensate a finished saga)."""


class SagaEngine:
    def __init__(
        self,
        machine: Machine,
        store: SagaStore,
        *,
        actor: str = "engine",
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.machine = machine
        self.definition = machine.definition
        self.store = store
        self.actor = actor
        self.clock = clock
        self.rng = rng or random.Random()

    # --- public API ---------------------------------------------------------------------

    def start(self, instance_id: str, data: Mapping[str, Any]) -> Instance:
        """Create the instance in the initial state; starting it again returns it as it is."""
        initial = self.definition.state(self.definition.initial)
        context = {"visits": {initial.name: 1}, "entered_at": self._now_iso(), "completed": []}
        instance = Instance(
            id=instance_id,
            machine=self.definition.name,
            machine_version=self.definition.version,
            state=initial.name,
            status=WAITING if initial.kind == "wait" else RUNNING,
            data=dict(data),
            context=context,
            version=1,
        )
        if self.store.create(instance, self.actor):
            return instance
        return self.store.load(instance_id)

    def run(
        self, instance_id: str, max_transitions: int = 10_000, instance: Instance | None = None
    ) -> Instance:
        """Advance until the instance is final or must wait (a timer, a backoff, an event).
        Pass the ``instance`` just loaded or started to save reading it again."""
        instance = instance or self.store.load(instance_id)
        for _ in range(max_transitions):
            if instance.final or self.must_wait(instance):
                return instance
            try:
                instance = self.advance(instance)
            except ConcurrentTransition:
                instance = self.store.load(instance_id)
        raise RuntimeError(f"{instance_id}: more than {max_transitions} transitions in one run")

    def must_wait(self, instance: Instance) -> bool:
        """True while a timer or backoff has not expired, or a wait state has no event yet."""
        if instance.wake_at is not None:
            return instance.wake_at > self.clock()
        return instance.status == WAITING

    def advance(self, instance: Instance) -> Instance:
        """Apply the next transition of ``instance`` (loaded by the caller)."""
        if instance.final:
            return instance
        if instance.status == COMPENSATING:
            return self._compensate_next(instance)
        state = self.definition.state(instance.state)
        if state.kind == "wait":
            return self._fire(instance, state, "timeout", self._context(instance), instance.data, 1)
        if state.kind == "parallel":
            return self._run_branch(instance, state)
        return self._run_task(instance, state)

    def send(self, instance_id: str, event: str, data: Mapping[str, Any] | None = None) -> Instance:
        """Deliver an external event to an instance waiting in a ``wait`` state."""
        instance = self.store.load(instance_id)
        state = self.definition.state(instance.state) if not instance.final else None
        if state is None or state.kind != "wait":
            raise InvalidAction(f"{instance_id} is not waiting for an event (in {instance.state})")
        if not state.targets(event):
            raise InvalidAction(f"{instance.state} does not handle event {event!r}")
        merged = {**instance.data, **(data or {})}
        return self._fire(instance, state, event, self._context(instance), merged, 1)

    def retry_now(self, instance_id: str, actor: str | None = None) -> Instance:
        """Resume now: skip a pending backoff, or retry a compensation that kept failing."""
        instance = self.store.load(instance_id)
        context = self._context(instance)
        if instance.status == "compensation_failed":
            context["undo_attempts"] = 0
            status = COMPENSATING
        elif instance.wake_at is not None and not instance.final:
            status = instance.status if instance.status == COMPENSATING else RUNNING
        else:
            raise InvalidAction(f"{instance_id} is {instance.status}: nothing to retry")
        move = Move(instance.state, status, "retry_now", 1, instance.data, context)
        self.store.apply(instance, move, actor or self.actor)
        return self.run(instance_id)

    def compensate_now(self, instance_id: str, actor: str | None = None) -> Instance:
        """Abandon the saga: compensate its completed steps in reverse order."""
        instance = self.store.load(instance_id)
        if instance.final or instance.status == COMPENSATING:
            raise InvalidAction(f"{instance_id} is {instance.status}: cannot compensate now")
        target = self._fail_state()
        move = self._failure_move(
            instance,
            target,
            "compensate_now",
            self._context(instance),
            instance.data,
            1,
            error=f"compensation requested by {actor or self.actor}",
        )
        self.store.apply(instance, move, actor or self.actor)
        return self.run(instance_id)

    # --- forward steps ------------------------------------------------------------------

    def _run_task(self, instance: Instance, state: State) -> Instance:
        context = self._context(instance)
        attempt = context.setdefault("attempts", {}).get(state.name, 0) + 1
        if self._timed_out(context, state):
            error = f"{state.name} timed out after {state.timeout_seconds}s"
            return self._fire(instance, state, "timeout", context, instance.data, attempt, error)
        try:
            outcome = self._call(state.action, instance, state.name, attempt)
        except Exception as exc:
            return self._on_error(instance, state, state, exc, attempt, context)
        context["attempts"][state.name] = attempt
        self._completed(context, state)
        data = {**instance.data, **outcome.data}
        return self._fire(instance, state, outcome.event, context, data, attempt)

    def _run_branch(self, instance: Instance, state: State) -> Instance:
        context = self._context(instance)
        branches = context.setdefault("branches", {})
        pending = [name for name in state.branches if branches.get(name) != "done"]
        if not pending:
            return self._fire(instance, state, "done", context, instance.data, 1)
        branch = self.definition.state(pending[0])
        attempt = context.setdefault("attempts", {}).get(branch.name, 0) + 1
        try:
            outcome = self._call(branch.action, instance, branch.name, attempt)
        except Exception as exc:
            return self._on_error(instance, state, branch, exc, attempt, context)
        branches[branch.name] = "done"
        context["attempts"][branch.name] = attempt
        self._completed(context, branch)
        data = {**instance.data, **outcome.data}
        move = Move(state.name, RUNNING, f"{branch.name}.done", attempt, data, context)
        return self.store.apply(instance, move, self.actor)

    def _on_error(
        self,
        instance: Instance,
        state: State,
        step: State,
        exc: Exception,
        attempt: int,
        context: dict[str, Any],
    ) -> Instance:
        """Retry later within the policy, else raise ``failed`` on ``state``."""
        error = f"{step.name}: {type(exc).__name__}: {exc}"
        policy = step.retry or NO_RETRY
        context["attempts"][step.name] = attempt
        if is_retryable(exc) and attempt < policy.max_attempts:
            wake_at = self.clock() + timedelta(seconds=policy.delay(attempt, self.rng))
            move = Move(
                state.name, RUNNING, "retry", attempt, instance.data, context, wake_at, error
            )
            return self.store.apply(instance, move, self.actor)
        return self._fire(instance, state, "failed", context, instance.data, attempt, error)

    def _fire(
        self,
        instance: Instance,
        state: State,
        event: str,
        context: dict[str, Any],
        data: dict[str, Any],
        attempt: int,
        error: str | None = None,
    ) -> Instance:
        """Take the first transition on ``event`` whose guard allows it, and enter its target."""
        for transition in state.targets(event):
            guard = self.machine.guards.get(transition.guard) if transition.guard else None
            if guard is None or guard(data):
                return self._enter(
                    instance, transition.target, event, context, data, attempt, error
                )
        if event == "done" or event not in ("failed", "timeout"):
            error = error or f"{state.name}: no transition allows event {event!r}"
        target = self._fail_state()
        move = self._failure_move(instance, target, event, context, data, attempt, error)
        return self.store.apply(instance, move, self.actor)

    def _enter(
        self,
        instance: Instance,
        name: str,
        event: str,
        context: dict[str, Any],
        data: dict[str, Any],
        attempt: int,
        error: str | None,
    ) -> Instance:
        target = self.definition.state(name)
        visits = context.setdefault("visits", {})
        visits[name] = visits.get(name, 0) + 1
        if target.max_visits is not None and visits[name] > target.max_visits:
            error = f"{name} entered more than {target.max_visits} times"
            fail = self._fail_state()
            move = self._failure_move(instance, fail, event, context, data, attempt, error)
            return self.store.apply(instance, move, self.actor)
        if target.kind == "fail":
            move = self._failure_move(instance, name, event, context, data, attempt, error)
            return self.store.apply(instance, move, self.actor)
        context["entered_at"] = self._now_iso()
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
        move = Move(name, status, event, attempt, data, context, wake_at, error)
        return self.store.apply(instance, move, self.actor)

    # --- compensation -------------------------------------------------------------------

    def _failure_move(
        self,
        instance: Instance,
        fail_state: str,
        event: str,
        context: dict[str, Any],
        data: dict[str, Any],
        attempt: int,
        error: str | None,
    ) -> Move:
        """Enter the fail state; compensate next if any completed step has a compensation."""
        context["undo"] = list(reversed(context.get("completed", [])))
        context["undo_attempts"] = 0
        context["failure"] = error
        status = COMPENSATING if context["undo"] else "failed"
        return Move(fail_state, status, event, attempt, data, context, None, error)

    def _compensate_next(self, instance: Instance) -> Instance:
        context = self._context(instance)
        undo: list[str] = context.get("undo", [])
        if not undo:
            move = Move(
                COMPENSATED,
                "compensated",
                "compensation_done",
                1,
                instance.data,
                context,
                None,
                context.get("failure"),
            )
            return self.store.apply(instance, move, self.actor)
        step = self.definition.state(undo[0])
        attempt = context.get("undo_attempts", 0) + 1
        try:
            self._call(
                step.compensation,
                instance,
                undo_state(step.name),
                attempt,
                error=context.get("failure"),
            )
        except Exception as exc:
            error = f"{undo_state(step.name)}: {type(exc).__name__}: {exc}"
            context["undo_attempts"] = attempt
            policy = step.retry or COMPENSATION_RETRY
            if attempt < max(policy.max_attempts, COMPENSATION_RETRY.max_attempts):
                wake_at = self.clock() + timedelta(seconds=policy.delay(attempt, self.rng))
                move = Move(
                    instance.state,
                    COMPENSATING,
                    "compensation_retry",
                    attempt,
                    instance.data,
                    context,
                    wake_at,
                    error,
                )
            else:
                move = Move(
                    COMPENSATION_FAILED,
                    "compensation_failed",
                    "compensation_failed",
                    attempt,
                    instance.data,
                    context,
                    None,
                    error,
                )
            return self.store.apply(instance, move, self.actor)
        context["undo"] = undo[1:]
        context["undo_attempts"] = 0
        context.setdefault("undone", []).append(step.name)
        move = Move(
            undo_state(step.name),
            COMPENSATING,
            "compensated",
            attempt,
            instance.data,
            context,
            None,
            context.get("failure"),
        )
        return self.store.apply(instance, move, self.actor)

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
        result = action(ActionContext(instance.id, state, dict(instance.data), attempt, error))
        if isinstance(result, Outcome):
            return result
        return Outcome(data=dict(result or {}))

    def _fail_state(self) -> str:
        """Where an unhandled failure goes: the machine's first ``fail`` state."""
        return next((s.name for s in self.definition.states if s.kind == "fail"), "FAILED")

    def _completed(self, context: dict[str, Any], step: State) -> None:
        completed = context.setdefault("completed", [])
        if step.compensation and step.name not in completed:
            completed.append(step.name)

    def _timed_out(self, context: dict[str, Any], state: State) -> bool:
        if not state.timeout_seconds or "entered_at" not in context:
            return False
        entered = datetime.fromisoformat(context["entered_at"])
        return self.clock() - entered > timedelta(seconds=state.timeout_seconds)

    def _context(self, instance: Instance) -> dict[str, Any]:
        """A deep-enough copy of the bookkeeping (nested dicts and lists) to modify freely."""
        return {
            key: (dict(value) if isinstance(value, dict) else list(value))
            if isinstance(value, dict | list)
            else value
            for key, value in instance.context.items()
        }

    def _now_iso(self) -> str:
        return self.clock().isoformat()

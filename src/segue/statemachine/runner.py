"""The saga runner: advances instances one transition at a time, durably.

Every transition is saved (state, data, bookkeeping, audit record) in one transaction guarded by
the instance's version, so two workers can never both apply one. Actions run before the save:
after a crash the step runs again, which is why every action must be idempotent (the payment
steps are: their effects carry unique keys). Entering a ``fail`` state compensates the completed
steps in reverse order, one transition each, so a crash resumes at the next compensation.

What the next transition is, is decided by :class:`~segue.statemachine.planner.Planner`; this
module loads, saves and loops. ``run_many`` saves the transitions of several instances in one
commit (group commit), which keeps every guarantee above while paying one WAL flush per round.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from opentelemetry.trace import Span

from segue import tracing
from segue.statemachine.machine import Machine
from segue.statemachine.planner import COMPENSATION_RETRY, NO_RETRY, Planner
from segue.statemachine.records import (
    COMPENSATING,
    RUNNING,
    WAITING,
    ConcurrentTransition,
    Instance,
    Move,
)
from segue.statemachine.store import SagaStore
from segue.store.engine import utcnow

__all__ = ["COMPENSATION_RETRY", "NO_RETRY", "InvalidAction", "SagaRunner"]


class InvalidAction(RuntimeError):
    """The request does not fit the instance's current state (e.g. compensate a finished saga)."""


class SagaRunner:
    """Runs one machine's instances against a store."""

    def __init__(
        self,
        machine: Machine,
        store: SagaStore,
        *,
        actor: str = "engine",
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        """A runner of one machine's instances over a store.

        :param machine: the machine.
        :param store: where instances and audit records commit.
        :param actor: named in the audit trail.
        :param clock: now (timers and backoffs).
        :param rng: the backoff jitter's randomness (seed it in tests).
        """
        self.machine = machine
        self.definition = machine.definition
        self.store = store
        self.actor = actor
        self.clock = clock
        self.rng = rng or random.Random()
        self.planner = Planner(machine, clock, self.rng)

    def start(self, instance_id: str, data: Mapping[str, Any]) -> Instance:
        """Create the instance in the initial state; starting it again returns it as it is.

        :param instance_id: the new instance's id (e.g. the order id).
        :param data: its initial data.
        """
        instance = self._initial(instance_id, data)
        if self.store.create(instance, self.actor):
            return instance
        return self.store.load(instance_id)

    def start_many(self, starts: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Instance]:
        """``start`` for several (id, data) pairs in one commit, in the order given.

        :param starts: (instance id, data) pairs.
        """
        instances = [self._initial(instance_id, data) for instance_id, data in starts]
        created = self.store.create_many(instances, self.actor)
        return [i if i.id in created else self.store.load(i.id) for i in instances]

    def _initial(self, instance_id: str, data: Mapping[str, Any]) -> Instance:
        initial = self.planner.states[self.definition.initial]
        context = {"visits": {initial.name: 1}, "entered_at": self._now_iso(), "completed": []}
        return Instance(
            id=instance_id,
            machine=self.definition.name,
            machine_version=self.definition.version,
            state=initial.name,
            status=WAITING if initial.kind == "wait" else RUNNING,
            data=dict(data),
            context=context,
            version=1,
        )

    def run(
        self,
        instance_id: str,
        max_transitions: int = 10_000,
        instance: Instance | None = None,
        *,
        actor: str | None = None,
    ) -> Instance:
        """Advance until the instance is final or must wait (a timer, a backoff, an event).

        :param instance_id: the saga instance to advance.
        :param max_transitions: a bound against a machine that never settles.
        :param instance: the instance just loaded or started, to save reading it again.
        :param actor: who the transitions are recorded as (default: this runner's actor); a
            person's action names the person on every transition it causes.
        """
        instance = instance or self.store.load(instance_id)
        for _ in range(max_transitions):
            if instance.final or self.must_wait(instance):
                return instance
            try:
                instance = self.advance(instance, actor=actor)
            except ConcurrentTransition:
                instance = self.store.load(instance_id)
        raise RuntimeError(f"{instance_id}: more than {max_transitions} transitions in one run")

    def run_many(self, instances: Sequence[Instance], max_rounds: int = 10_000) -> list[Instance]:
        """Advance several (distinct) instances side by side until each is final or must wait,
        saving each round's transitions in one commit. Per instance this is ``run``: its next
        action runs only after its previous transition committed, its state and audit record
        commit together, and one that another worker moved first is reloaded and looked at
        again without holding back the others. Returns the instances in the order given.

        :param instances: the instances to advance.
        :param max_rounds: a bound against a machine that loops.
        """
        current = {instance.id: instance for instance in instances}
        if len(current) != len(instances):
            raise ValueError("a batch takes at most one entry per instance")
        for _ in range(max_rounds):
            ready = [i for i in current.values() if not i.final and not self.must_wait(i)]
            if not ready:
                return list(current.values())
            moves: list[tuple[Instance, Move]] = []
            for instance in ready:
                with self._span(instance):
                    move = self.planner.next_move(instance)
                if move is not None:
                    moves.append((instance, move))
            for (instance, _), saved in zip(
                moves, self.store.apply_many(moves, self.actor), strict=True
            ):
                current[instance.id] = saved or self.store.load(instance.id)
        raise RuntimeError(f"more than {max_rounds} rounds in one run_many")

    def must_wait(self, instance: Instance) -> bool:
        """True while a timer or backoff has not expired, or a wait state has no event yet.

        :param instance: the saga instance.
        """
        if instance.wake_at is not None:
            return instance.wake_at > self.clock()
        return instance.status == WAITING

    def advance(self, instance: Instance, *, actor: str | None = None) -> Instance:
        """Apply the next transition of ``instance`` (loaded by the caller).

        :param actor: who the transition is recorded as (default: this runner's actor).
        """
        with self._span(instance) as span:
            move = self.planner.next_move(instance)
            if move is None:
                return instance
            saved = self.store.apply(instance, move, actor or self.actor)
            if span is not None:
                span.set_attribute("segue.saga.to_state", saved.state)
            return saved

    def _span(self, instance: Instance) -> AbstractContextManager[Span | None]:
        """The span of one transition of ``instance``, in the trace of its id (the order's).

        :param instance: the instance about to move.
        """
        attributes = {
            "segue.saga.machine": self.definition.name,
            "segue.saga.state": instance.state,
        }
        name = f"saga {self.definition.name} {instance.state}"
        return tracing.span(name, order_id=instance.id, attributes=attributes)

    def send(self, instance_id: str, event: str, data: Mapping[str, Any] | None = None) -> Instance:
        """Deliver an external event to an instance waiting in a ``wait`` state.

        :param instance_id: the waiting instance.
        :param event: the event's name.
        :param data: merged into the instance's data.
        """
        instance = self.store.load(instance_id)
        state = self.planner.states[instance.state] if not instance.final else None
        if state is None or state.kind != "wait":
            raise InvalidAction(f"{instance_id} is not waiting for an event (in {instance.state})")
        if not state.targets(event):
            raise InvalidAction(f"{instance.state} does not handle event {event!r}")
        merged = {**instance.data, **(data or {})}
        context = self.planner.context(instance)
        move = self.planner.fire(instance, state, event, context, merged, 1)
        return self.store.apply(instance, move, self.actor)

    def retry_now(self, instance_id: str, actor: str | None = None) -> Instance:
        """Resume now: skip a pending backoff, or retry a compensation that kept failing.

        :param instance_id: the saga instance.
        :param actor: who asked (default: the runner's actor).
        """
        instance = self.store.load(instance_id)
        context = self.planner.context(instance)
        if instance.status == "compensation_failed":
            context["undo_attempts"] = 0
            status = COMPENSATING
        elif instance.wake_at is not None and not instance.final:
            status = instance.status if instance.status == COMPENSATING else RUNNING
        else:
            raise InvalidAction(f"{instance_id} is {instance.status}: nothing to retry")
        move = Move(instance.state, status, "retry_now", 1, instance.data, context)
        self.store.apply(instance, move, actor or self.actor)
        return self.run(instance_id, actor=actor)

    def compensate_now(self, instance_id: str, actor: str | None = None) -> Instance:
        """Abandon the saga: compensate its completed steps in reverse order.

        :param instance_id: the saga instance.
        :param actor: who asked (default: the runner's actor).
        """
        instance = self.store.load(instance_id)
        if instance.final or instance.status == COMPENSATING:
            raise InvalidAction(f"{instance_id} is {instance.status}: cannot compensate now")
        move = self.planner.failure_move(
            self.planner.fail_state,
            "compensate_now",
            self.planner.context(instance),
            instance.data,
            1,
            error=f"compensation requested by {actor or self.actor}",
        )
        self.store.apply(instance, move, actor or self.actor)
        return self.run(instance_id, actor=actor)

    def _now_iso(self) -> str:
        return self.clock().isoformat()

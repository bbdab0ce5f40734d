"""What the saga pages need from the saga store and runner, as errors the pages can show.

The pages never talk to SQL or the runner directly: this is the seam the tests replace
(``create_app(service_factory=...)``) and the one place mapping runner errors to HTTP meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from segue.statemachine.definition import StateMachineDefinition
from segue.statemachine.machine import Machine
from segue.statemachine.runner import InvalidAction, SagaRunner
from segue.statemachine.store import (
    COMPENSATING,
    INSTANCES,
    ConcurrentTransition,
    Instance,
    SagaStore,
)

STATUSES = (
    "running",
    "waiting",
    "compensating",
    "succeeded",
    "failed",
    "compensated",
    "compensation_failed",
)
MachineLookup = Callable[[str], Machine]
DagLookup = Callable[[str], tuple[str, ...]]


def no_dags(_machine: str) -> tuple[str, ...]:
    """No machine names its DAGs: only users with access to every DAG see its sagas.

    :param _machine: the machine's name.
    """
    return ()


class SagaNotFound(LookupError):
    """No saga instance has this id (HTTP 404)."""


class SagaConflict(RuntimeError):
    """The action does not fit the instance now, or its machine is unknown (HTTP 409)."""


@dataclass(frozen=True)
class SagaDetail:
    """An instance with its audit trail and, when its machine is known, the definition."""

    instance: Instance
    trail: list[dict[str, Any]]
    definition: StateMachineDefinition | None
    machine_error: str | None = None

    @property
    def visited(self) -> list[str]:
        """States the instance has been in, in order of first visit."""
        seen: dict[str, None] = {}
        for row in self.trail:
            event = row.get("event") or ""
            # parallel branches that finished show up as a "<branch>+<branch>.done" event
            branches = event.removesuffix(".done").split("+") if event.endswith(".done") else []
            for name in (row.get("from_state"), row.get("to_state"), *branches):
                if name:
                    seen.setdefault(name, None)
        return list(seen)


def can_retry(instance: Instance) -> bool:
    """Mirror of ``SagaRunner.retry_now``'s precondition, to enable the button.

    :param instance: the saga instance shown.
    """
    return instance.status == "compensation_failed" or (
        instance.wake_at is not None and not instance.final
    )


def can_compensate(instance: Instance) -> bool:
    """Mirror of ``SagaRunner.compensate_now``'s precondition, to enable the button.

    :param instance: the saga instance shown.
    """
    return not instance.final and instance.status != COMPENSATING


class SagaService:
    """What the UI and API do with sagas: list, show, retry, compensate (errors typed for HTTP)."""

    def __init__(
        self, store: SagaStore, machine_for: MachineLookup, dags_for: DagLookup = no_dags
    ) -> None:
        """A service over one saga store.

        :param store: where instances and their audit trails live.
        :param machine_for: the machine of a name (to show its diagram and act on instances).
        :param dags_for: the Airflow DAGs that run a machine (who may see its instances).
        """
        self.store = store
        self.machine_for = machine_for
        self.dags_for = dags_for

    def list(
        self,
        *,
        state: str | None = None,
        status: str | None = None,
        limit: int = 100,
        machines: Collection[str] | None = None,
    ) -> list[Instance]:
        """Instances, newest first, optionally filtered.

        :param state: only instances in this state.
        :param status: only instances with this status.
        :param limit: at most this many.
        :param machines: only instances of these machines (None: any).
        """
        return self.store.list_instances(state=state, status=status, limit=limit, machines=machines)

    def machines(self) -> list[str]:
        """The name of every machine some instance belongs to."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(select(INSTANCES.c.machine).distinct())
            return sorted(row[0] for row in rows)

    def known_states(self, machines: Collection[str] | None = None) -> list[str]:
        """Every state some instance is in now (for the filter's suggestions).

        :param machines: only instances of these machines (None: any).
        """
        query = select(INSTANCES.c.state).distinct()
        if machines is not None:
            query = query.where(INSTANCES.c.machine.in_(sorted(machines)))
        with self.store.engine.connect() as connection:
            return sorted(row[0] for row in connection.execute(query))

    def load(self, instance_id: str) -> Instance:
        """One instance; SagaNotFound (404) when there is none.

        :param instance_id: the saga instance.
        """
        try:
            return self.store.load(instance_id)
        except KeyError:
            raise SagaNotFound(f"no saga instance {instance_id!r}") from None

    def detail(self, instance_id: str) -> SagaDetail:
        """An instance with its trail and definition; an unknown machine is reported, not raised.

        :param instance_id: the saga instance.
        """
        instance = self.load(instance_id)
        trail = self.store.audit_trail(instance_id)
        try:
            definition = self.machine_for(instance.machine).definition
        except LookupError as exc:
            return SagaDetail(instance, trail, None, _message(exc))
        return SagaDetail(instance, trail, definition)

    def retry(self, instance_id: str, actor: str) -> Instance:
        """Retry from the current state (skip a backoff / resume failed compensations).

        :param instance_id: the saga instance.
        :param actor: who asked (recorded in the audit trail).
        """
        runner = self._runner(instance_id)
        return self._act(lambda: runner.retry_now(instance_id, actor=actor))

    def compensate(self, instance_id: str, actor: str) -> Instance:
        """Abandon the saga now and compensate its completed steps.

        :param instance_id: the saga instance.
        :param actor: who asked (recorded in the audit trail).
        """
        runner = self._runner(instance_id)
        return self._act(lambda: runner.compensate_now(instance_id, actor=actor))

    def _runner(self, instance_id: str) -> SagaRunner:
        instance = self.load(instance_id)
        try:
            machine = self.machine_for(instance.machine)
        except LookupError as exc:
            raise SagaConflict(f"cannot act on {instance_id}: {_message(exc)}") from exc
        return SagaRunner(machine, self.store)

    @staticmethod
    def _act(action: Callable[[], Instance]) -> Instance:
        try:
            return action()
        except (InvalidAction, ConcurrentTransition) as exc:
            raise SagaConflict(str(exc)) from exc


def _message(exc: BaseException) -> str:
    """An exception's message without KeyError's quotes."""
    return str(exc.args[0]) if exc.args else type(exc).__name__

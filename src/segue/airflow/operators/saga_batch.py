"""RunSagaBatchOperator: drives many saga instances from one Airflow task, with group commit.

The sibling of :class:`~segue.airflow.operators.saga.RunSagaOperator` for batches: it starts
every instance of ``instances`` in one commit (``SagaRunner.start_many``; starting again is
idempotent, so a task retry resumes the same instances) and advances them side by side with
``SagaRunner.run_many``, one commit per round for the whole batch. When every instance left is
waiting (a retry backoff, a timer, an external event) the task defers to
:class:`SagaBatchProgressTrigger` and frees its worker slot. Each instance's outcome is its own:
a failed or compensated saga does not fail the task; the returned XCom and the log say what
happened to each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from segue.airflow.operators.saga_base import BaseSagaOperator
from segue.airflow.triggers.saga_batch import SagaBatchProgressTrigger
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import Instance


class RunSagaBatchOperator(BaseSagaOperator):
    """Run the saga ``machine`` for each of ``instances`` (id: ``data[id_field]``) to its end."""

    template_fields: Sequence[str] = ("instances",)

    def __init__(
        self,
        *,
        machine: str,
        instances: list[dict[str, Any]] | Any,
        id_field: str = "order_id",
        poll_seconds: float = 2.0,
        **kwargs: Any,
    ) -> None:
        """A batch of one machine's instances.

        :param machine: the registered machine's name.
        :param instances: the instances' initial data (templated; e.g. an upstream XCom).
        :param id_field: the key of each instance's id in its data.
        :param poll_seconds: how often the deferred task's trigger reads the store.
        """
        super().__init__(machine=machine, id_field=id_field, poll_seconds=poll_seconds, **kwargs)
        self.instances = instances

    def _ids(self) -> list[str]:
        return [str(data[self.id_field]) for data in self.instances or []]

    def execute(self, context: Context) -> dict[str, Any]:
        runner = self._runner(context)
        starts = [(str(data[self.id_field]), data) for data in self.instances or []]
        self.log.info("starting %d saga instances of %s", len(starts), self.machine)
        started = runner.start_many(starts) if starts else []
        return self._drive(runner, {i.id: i for i in started})

    def resume(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the trigger: advance the batch until every instance is final or waits.

        :param context: the task's Airflow context.
        :param event: the trigger's event (``reason``, ``moved``).
        """
        self.log.info("resumed (%s: %s)", (event or {}).get("reason"), (event or {}).get("moved"))
        runner = self._runner(context)
        return self._drive(runner, runner.store.load_many(self._ids()))

    def _drive(self, runner: SagaRunner, current: dict[str, Instance]) -> dict[str, Any]:
        open_ = [i for i in current.values() if not i.final]
        for instance in runner.run_many(open_):
            current[instance.id] = instance
        waiting = [i for i in current.values() if not i.final]
        if waiting:
            wakes = [i.wake_at for i in waiting if i.wake_at is not None]
            wake = min(wakes).isoformat() if wakes else None
            self.log.info(
                "%d of %d instances wait (earliest wake %s): deferring",
                len(waiting),
                len(current),
                wake or "an event",
            )
            self.defer(
                trigger=SagaBatchProgressTrigger(
                    {i.id: i.version for i in waiting}, wake, self.poll_seconds
                ),
                method_name="resume",
            )
        return self._report(current)

    def _report(self, current: dict[str, Instance]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        outcomes: dict[str, dict[str, Any]] = {}
        for instance_id in sorted(current):
            instance = current[instance_id]
            counts[instance.status] = counts.get(instance.status, 0) + 1
            outcomes[instance_id] = {
                "state": instance.state,
                "status": instance.status,
                "error": instance.error,
            }
            self.log.info(
                "saga %s ended %s in %s%s  /segue/sagas/%s",
                instance_id,
                instance.status,
                instance.state,
                f": {instance.error}" if instance.error else "",
                instance_id,
            )
        self.log.info("%d sagas: %s", len(current), counts)
        return {"counts": counts, "instances": outcomes}

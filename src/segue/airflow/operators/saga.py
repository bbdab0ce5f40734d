"""RunSagaOperator: drives one saga instance to a terminal state from an Airflow task.

While the instance waits (a retry backoff, a timer, an external event) the task defers to
:class:`SagaProgressTrigger` instead of holding a worker slot. A task retry resumes the same
instance (starting is idempotent). The final instance goes to XCom; a saga that failed or was
compensated fails the task with its audit trail in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from segue import tracing
from segue.airflow.operators.saga_base import BaseSagaOperator
from segue.airflow.triggers.saga import SagaProgressTrigger
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import Instance


class RunSagaOperator(BaseSagaOperator):
    """Run the saga ``machine`` for ``data`` (its id is ``data[id_field]``) to completion."""

    template_fields: Sequence[str] = ("data",)

    def __init__(
        self,
        *,
        machine: str,
        data: dict[str, Any] | Any,
        id_field: str = "order_id",
        poll_seconds: float = 2.0,
        **kwargs: Any,
    ) -> None:
        """One instance of one machine.

        :param machine: the registered machine's name.
        :param data: the instance's initial data (templated; e.g. an upstream XCom).
        :param id_field: the key of the instance's id in its data.
        :param poll_seconds: how often the deferred task's trigger reads the store.
        """
        super().__init__(machine=machine, id_field=id_field, poll_seconds=poll_seconds, **kwargs)
        self.data = data

    def execute(self, context: Context) -> dict[str, Any]:
        instance_id = str(self.data[self.id_field])
        runner = self._runner(context)
        runner.start(instance_id, self.data)
        return self._drive(runner, instance_id)

    def resume(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the trigger: drive the saga on until it is final or must wait again.

        :param context: the task's Airflow context.
        :param event: the trigger's event (``instance_id`` and ``reason``).
        """
        instance_id = (event or {}).get("instance_id") or str(self.data[self.id_field])
        self.log.info("resumed saga %s (%s)", instance_id, (event or {}).get("reason"))
        return self._drive(self._runner(context), instance_id)

    def _drive(self, runner: SagaRunner, instance_id: str) -> dict[str, Any]:
        tracing.ensure_configured("airflow-task")
        tracing.link_enclosing(instance_id)  # Airflow's task span points at the order's trace
        try:
            instance = runner.run(instance_id)
        finally:
            tracing.flush()  # the task process may end without running atexit hooks
        if not instance.final:
            wake = instance.wake_at.isoformat() if instance.wake_at else None
            self.log.info(
                "saga %s waits in %s (%s) until %s: deferring",
                instance_id,
                instance.state,
                instance.error or "no error",
                wake or "an event",
            )
            self.defer(
                trigger=SagaProgressTrigger(instance_id, instance.version, wake, self.poll_seconds),
                method_name="resume",
            )
        trail = self._trail(runner, instance)
        self.log.info(
            "saga %s ended %s in %s:\n%s", instance_id, instance.status, instance.state, trail
        )
        if instance.status != "succeeded":
            raise AirflowFailException(
                f"saga {instance_id} ended {instance.status} in {instance.state}: "
                f"{instance.error}\n{trail}"
            )
        return {
            "instance_id": instance_id,
            "state": instance.state,
            "status": instance.status,
            "data": instance.data,
        }

    @staticmethod
    def _trail(runner: SagaRunner, instance: Instance) -> str:
        return "\n".join(
            f"  {row['at']:%H:%M:%S} {row['from_state'] or '-'} -> {row['to_state']} "
            f"[{row['event']}] attempt {row['attempt']}"
            + (f" error: {row['error']}" if row["error"] else "")
            for row in runner.store.audit_trail(instance.id)
        )

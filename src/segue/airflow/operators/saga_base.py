"""BaseSagaOperator: what the saga operators share, the machine they drive, where an
instance's id is in its data, how often their trigger polls, and the runner each task builds.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from segue.settings import get_settings
from segue.statemachine.registry import machine_for
from segue.statemachine.runner import SagaRunner
from segue.statemachine.store import SagaStore
from segue.store.engine import shared_engine


class BaseSagaOperator(BaseOperator):
    """Drives instances of the registered saga ``machine``; subclasses say which and how."""

    ui_color = "#e8d8f0"

    def __init__(
        self,
        *,
        machine: str,
        id_field: str = "order_id",
        poll_seconds: float = 2.0,
        **kwargs: Any,
    ) -> None:
        """The machine and the settings every saga operator takes.

        :param machine: the registered machine's name.
        :param id_field: the key of an instance's id in its data.
        :param poll_seconds: how often the deferred task's trigger reads the store.
        """
        super().__init__(**kwargs)
        self.machine = machine
        self.id_field = id_field
        self.poll_seconds = poll_seconds

    def _runner(self, context: Context) -> SagaRunner:
        """A runner of ``machine`` on the saga store, its audit trail naming this task."""
        store = SagaStore(shared_engine(get_settings().database_url))
        actor = f"airflow:{context['dag'].dag_id}/{context['run_id']}/{self.task_id}"
        return SagaRunner(machine_for(self.machine), store, actor=actor)

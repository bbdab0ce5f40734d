"""RolloutApprovalOperator: a person approves (or rejects) the next step of a guarded rollout in
the Airflow UI, through Airflow 3.3's human-in-the-loop ``ApprovalOperator``.

The answer is applied to the rollout as soon as it arrives: *Approve* promotes the rollout to
the step (:func:`segue.rollout.guard.approve`), *Reject* aborts it through the kill switch
(:func:`segue.rollout.guard.reject`), the Airflow user recorded as the actor in the flag's history.
A rollout that moved on meanwhile (aborted by its checks, stopped by hand) is not asked about,
and a late answer changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from segue.rollout.definition import RolloutError
from segue.settings import get_settings
from segue.store.engine import session_scope, shared_engine

log = logging.getLogger(__name__)


class RolloutApprovalOperator(ApprovalOperator):
    """Ask a person whether guarded rollout ``rollout_id`` may enter step ``step`` (0-based)."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "rollout_id", "step")
    ui_color = "#fde9b8"

    def __init__(
        self,
        *,
        rollout_id: int | str,
        step: int | str,
        database_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        """The approval task.

        :param rollout_id: the rollout (templated).
        :param step: the step asked for, 0-based (templated).
        :param database_url: the business store (default: ``SEGUE_DATABASE_URL``).
        :param kwargs: ``ApprovalOperator``'s (``subject``, ``body``, ``assigned_users``, ...).
        """
        super().__init__(**kwargs)
        self.rollout_id = rollout_id
        self.step = step
        self.database_url = database_url

    def _engine(self) -> Any:
        return shared_engine(self.database_url or get_settings().database_url)

    def execute(self, context: Context) -> Any:
        from segue.rollout.guard import active_by_id

        with session_scope(self._engine()) as session:
            state = active_by_id(session, int(self.rollout_id))
        if state is None or state.awaiting_step != int(self.step):
            raise AirflowSkipException(
                f"rollout {self.rollout_id} no longer waits for step {int(self.step) + 1}"
            )
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from segue.rollout.guard import approve, reject

        result = super().execute_complete(context, event)
        user = result.get("responded_by_user") or {}
        actor = f"airflow:{user.get('name') or user.get('id') or 'unknown'}"
        apply = approve if result["chosen_options"][0] == self.APPROVE else reject
        try:
            with session_scope(self._engine()) as session:
                decision = apply(session, int(self.rollout_id), int(self.step), actor)
        except RolloutError as error:  # the rollout moved on meanwhile: nothing to apply
            log.warning("answer from %s not applied: %s", actor, error)
            return result
        log.info("rollout %s: %s: %s", decision.rollout_id, decision.action, decision.reason)
        return result

"""
### payment_rollout: the guarded rollout's controller

Every minute, one short run evaluates the guarded rollout of the `route` flag going on (started
on the Rollout page or with `segue rollout start examples/rollout-plan.yaml`): it runs the plan's
checks over the current step's window, keeps the measurements (`rollout_evaluations`, charted on
the Rollout page) and then

- **promotes** to the next step when the step has baked and every check passed;
- **holds** while a check is inconclusive (too few orders) or failing below its limit, and
  stops for a person (**held**) after `inconclusive_limit` inconclusive evaluations in a row;
- **asks a person** when the next step says `approval: true`: it triggers
  `payment_rollout_approval` (answered in Airflow's *Required actions*) and keeps evaluating
  meanwhile, so an unhealthy candidate is still rolled back while the question waits;
- **aborts** when a check failed `failure_limit` times: the kill switch (`segue.rollout.kill`),
  audited with the failing measurements as the reason; orders already on the candidate finish
  there (decisions are sticky);
- **stops** when someone changed the flag by hand (a new split, the kill switch).

Why a run every minute (`max_active_runs=1`, no catchup) and not one long deferrable run: each
evaluation is a run of its own in the grid with its own log, a restart or a lost worker costs one
evaluation, no task holds a slot or a trigger for hours, and the state lives in the business
store (`rollouts`), locked per evaluation, so a late or manual run cannot double-act. A plan
whose `interval_seconds` is longer is evaluated at its own pace (runs in between do nothing).
Rollback takes at most `interval_seconds` x `failure_limit` after the candidate turns bad.

The logic is plain Python: `segue/rollout/guard.py` (no Airflow there).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from include.payments.database import payments_engine
from include.workflow import ROLLOUT_FLAG
from segue.rollout import guard
from segue.rollout.guard_model import Action, approval_run_id
from segue.settings import get_settings
from segue.store.engine import session_scope

APPROVAL_DAG = "payment_rollout_approval"


@dag(
    dag_id="payment_rollout",
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "rollout"],
    default_args={"owner": "payments", "retries": 2, "retry_delay": timedelta(seconds=10)},
)
def payment_rollout() -> None:
    @task
    def evaluate() -> list[dict[str, Any]]:
        run_id = get_current_context()["run_id"]
        engine = payments_engine(get_settings().database_url)
        with session_scope(engine) as session:
            decisions = guard.evaluate(
                session, actor=f"airflow:payment_rollout/{run_id}", flags=[ROLLOUT_FLAG]
            )
        return [decision.model_dump(mode="json") for decision in decisions]

    @task
    def approvals(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One approval request per rollout waiting for a person (its run id makes it once)."""
        return [
            {
                "trigger_run_id": approval_run_id(
                    d["rollout_id"],
                    datetime.fromisoformat(d["rollout_started_at"]),
                    d["awaiting_step"],
                ),
                "conf": {
                    "rollout_id": d["rollout_id"],
                    "step": d["awaiting_step"],
                    "reason": d["reason"],
                },
            }
            for d in decisions
            if d["action"] == Action.AWAIT_APPROVAL.value and d["awaiting_step"] is not None
        ]

    TriggerDagRunOperator.partial(
        task_id="ask_approval", trigger_dag_id=APPROVAL_DAG, skip_when_already_exists=True
    ).expand_kwargs(approvals(evaluate()))


payment_rollout()

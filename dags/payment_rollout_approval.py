"""
### payment_rollout_approval: a person approves the next step of a guarded rollout

Triggered by `payment_rollout` when the next step of a plan says `approval: true` (one run per
rollout and step). The task waits in Airflow's *Required actions* (human-in-the-loop,
`ApprovalOperator`): **Approve** promotes the rollout to the step at once, **Reject** aborts it
through the kill switch; either way the Airflow user is the actor in the flag's history. The
controller keeps evaluating while the question waits: a rollout its checks abort meanwhile is not
changed by a late answer. The operator is `segue.airflow.operators.rollout`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag

from segue.airflow.operators.rollout import RolloutApprovalOperator


@dag(
    dag_id="payment_rollout_approval",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "rollout"],
    params={
        "rollout_id": Param(0, type="integer", description="The guarded rollout."),
        "step": Param(0, type="integer", description="The step asked for (0-based)."),
        "reason": Param("", type="string", description="What the controller saw."),
    },
    # a retry asks again, unless the rollout moved on meanwhile
    default_args={"owner": "payments", "retries": 2, "retry_delay": timedelta(seconds=10)},
)
def payment_rollout_approval() -> None:
    RolloutApprovalOperator(
        task_id="approve_step",
        rollout_id="{{ params.rollout_id }}",
        step="{{ params.step }}",
        subject="Guarded rollout {{ params.rollout_id }}: go to step {{ params.step + 1 }}?",
        body="{{ params.reason }}\n\n*Approve* raises the candidate's share now; *Reject* "
        "aborts the rollout (kill switch). See the Rollout page for the measurements.",
    )


payment_rollout_approval()

"""
### payment_state_machine_batch: the saga path, one run per batch of front-door orders

Orders the front door routes to `saga` wait in the batch queue (table `batch_orders`); a
watcher schedules a run once `SEGUE_BATCH_MAX_ORDERS` are ready or the oldest waited
`SEGUE_BATCH_MAX_WAIT_SECONDS`. `claim` takes up to that many, `run_sagas`
(`RunSagaBatchOperator`) drives one payment saga per order (`include/payments/saga.py`, the
same machine as `payment_state_machine`) with the engine's group commit: one commit per round of
transitions for the whole batch. While every saga left waits (a retry backoff after a gateway
error) the task **defers**. Each order's outcome is its own (a declined card compensates that
saga only); `settle` logs one line per order with its timeline (`/segue/orders/<id>`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from include.batch_dags import batch_dag_args, claim_saga_batch, settle_sagas
from include.payment_dags import SAGA_DEFAULT_ARGS
from segue.airflow.operators.saga_batch import RunSagaBatchOperator

DAG_ID = "payment_state_machine_batch"


@dag(
    **batch_dag_args(
        DAG_ID,
        doc_md=__doc__,
        tags=["segue", "payments", "saga", "batch"],
        default_args=SAGA_DEFAULT_ARGS,
    )
)
def payment_state_machine_batch() -> None:
    @task
    def claim() -> list[dict[str, Any]]:
        return claim_saga_batch()

    @task
    def settle(result: dict[str, Any]) -> dict[str, Any]:
        return settle_sagas(result)

    sagas = RunSagaBatchOperator(task_id="run_sagas", machine="payment_saga", instances=claim())
    settle(sagas.output)


payment_state_machine_batch()

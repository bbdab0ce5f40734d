"""
### payment_pipeline_batch: the linear path, one run per batch of front-door orders

Orders the front door routes to `dag` wait in the batch queue (table `batch_orders`); a watcher
on the queue schedules a run once `SEGUE_BATCH_MAX_ORDERS` are ready or the oldest waited
`SEGUE_BATCH_MAX_WAIT_SECONDS`, and the run takes up to that many:
**validate → charge → update_inventory → send_receipt → notify_shipping**, each task one step
over the whole batch, with the same domain steps as `payment_pipeline`.

Per order, as in `payment_pipeline`: a declined card, an invalid order or missing stock
dead-letters that order alone and its later steps don't run; a transient failure puts it back in
the queue with exponential backoff for a later run, which resumes it at that step. The
`notify_shipping` log has one line per order (its outcome and its timeline,
`/segue/orders/<id>`), and its XCom the same per order.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from include.batch_dags import (
    batch_dag_args,
    batch_default_args,
    claim_batch,
    report,
    run_step_over_batch,
)

DAG_ID = "payment_pipeline_batch"


@dag(
    **batch_dag_args(
        DAG_ID,
        doc_md=__doc__,
        tags=["segue", "payments", "linear", "batch"],
        default_args=batch_default_args(),
    )
)
def payment_pipeline_batch() -> None:
    @task
    def validate() -> list[str]:
        order_ids = claim_batch()
        return run_step_over_batch("validate", order_ids)

    @task
    def charge(order_ids: list[str]) -> list[str]:
        return run_step_over_batch("charge", order_ids)

    @task
    def update_inventory(order_ids: list[str]) -> list[str]:
        return run_step_over_batch("update_inventory", order_ids)

    @task
    def send_receipt(order_ids: list[str]) -> list[str]:
        return run_step_over_batch("send_receipt", order_ids)

    @task
    def notify_shipping(order_ids: list[str]) -> dict[str, Any]:
        run_step_over_batch("notify_shipping", order_ids)
        return report(order_ids)

    notify_shipping(send_receipt(update_inventory(charge(validate()))))


payment_pipeline_batch()

"""
### payment_pipeline: the linear path

One run per order: **validate → charge → update_inventory → send_receipt → notify_shipping**.

Trigger it with the form (or `conf`): the fields are the order (see *Params*). Each step is
idempotent and retried with exponential backoff. A declined card, an invalid order or missing
stock fails the step at once (no retry); a step that exhausts its retries is recorded in the
`dead_letters` table and the order is marked `failed`. Later steps then don't run.

The steps are plain functions in `include/payments`; the state-machine and event paths call
the same ones.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from include.payment_dags import (
    dead_letter_failed_task,
    notify_shipping,
    order_params,
    payment_default_args,
    run_payment_step,
    send_receipt,
    update_inventory,
    validate,
)
from include.payments import pipeline


@dag(
    dag_id="payment_pipeline",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "linear"],
    params=order_params(),
    on_failure_callback=dead_letter_failed_task,  # the failed task: also when it was SIGKILLed
    default_args=payment_default_args(),
)
def payment_pipeline() -> None:
    @task
    def charge(order_id: str) -> dict[str, Any]:
        return run_payment_step("charge", order_id, lambda d: pipeline.charge(d, order_id))

    order_id = validate()
    charged = charge(order_id)
    stocked = update_inventory(order_id)
    receipt = send_receipt(order_id)
    shipped = notify_shipping(order_id)
    charged >> stocked >> receipt >> shipped


payment_pipeline()

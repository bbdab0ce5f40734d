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

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from include.payments import pipeline
from include.payments.order_form import ORDER_FORM, masked
from segue.airflow.steps import run_task_step
from segue.settings import get_settings

settings = get_settings()


def _run(step: str, order_id: str, action: Any, payload: Any = None) -> Any:
    """Run one pipeline step with dead-lettering; the order fails if the step is abandoned."""
    deps = pipeline.default_deps()
    return run_task_step(
        lambda: action(deps),
        engine=deps.engine,
        step=step,
        subject=order_id,
        payload=payload or (lambda: pipeline.order_payload(deps, order_id)),
        on_abandon=pipeline.fail_order_on_abandon(order_id),
    )


@dag(
    dag_id="payment_pipeline",
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "linear"],
    params={name: Param(**spec) for name, spec in ORDER_FORM.items()},
    default_args={
        "owner": "payments",
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=settings.max_retry_delay_seconds),
    },
)
def payment_pipeline() -> None:
    @task
    def validate() -> str:
        context = get_current_context()
        data = dict(context["params"])
        data["order_id"] = data.get("order_id") or pipeline.order_id_for_run(context["run_id"])
        order_id = str(data["order_id"])
        return _run("validate", order_id, lambda d: pipeline.validate(d, data), masked(data))

    @task
    def charge(order_id: str) -> dict[str, Any]:
        return _run("charge", order_id, lambda d: pipeline.charge(d, order_id))

    @task
    def update_inventory(order_id: str) -> list[dict[str, Any]]:
        return _run("update_inventory", order_id, lambda d: pipeline.update_inventory(d, order_id))

    @task
    def send_receipt(order_id: str) -> str:
        return _run("send_receipt", order_id, lambda d: pipeline.send_receipt(d, order_id))

    @task
    def notify_shipping(order_id: str) -> dict[str, Any]:
        return _run("notify_shipping", order_id, lambda d: pipeline.notify_shipping(d, order_id))

    order_id = validate()
    charged = charge(order_id)
    stocked = update_inventory(order_id)
    receipt = send_receipt(order_id)
    shipped = notify_shipping(order_id)
    charged >> stocked >> receipt >> shipped


payment_pipeline()

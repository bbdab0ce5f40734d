"""What the payment DAGs share: the trigger form, the order read from it, a dead-lettered step.

Airflow-facing glue kept out of ``include/payments`` (which stays free of Airflow imports).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, get_current_context

from include.payments import pipeline
from include.payments.order_form import ORDER_FORM
from segue.airflow.steps import run_task_step


def order_params() -> dict[str, Param]:
    """The trigger form of every payment DAG (one Param per order field)."""
    return {name: Param(**spec) for name, spec in ORDER_FORM.items()}


def order_from_params() -> dict[str, Any]:
    """The running task's order from the form, with a stable id when none was given."""
    context = get_current_context()
    data = dict(context["params"])
    data["order_id"] = data.get("order_id") or pipeline.order_id_for_run(context["run_id"])
    return data


def run_payment_step(step: str, order_id: str, action: Any, payload: Any = None) -> Any:
    """Run one pipeline step with dead-lettering; the order fails if the step is abandoned.

    An abandoned order with no recorded charge is reconciled with the gateway (a charge whose
    answer was lost is refunded) before the task fails.
    """
    deps = pipeline.default_deps()
    return run_task_step(
        lambda: action(deps),
        engine=deps.engine,
        step=step,
        subject=order_id,
        payload=payload or (lambda: pipeline.order_payload(deps, order_id)),
        on_abandon=pipeline.fail_and_reconcile_on_abandon(deps, order_id),
    )

"""What the payment DAGs share: the trigger form, the order read from it, the task defaults, a
dead-lettered step, the steps before and after the charge (the same tasks on the linear and
hybrid DAGs) and the failure callback that dead-letters a task whatever ended it.

Airflow-facing glue kept out of ``include/payments`` (which stays free of Airflow imports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from include.payments import pipeline, retry
from include.payments.deps import PaymentDeps, default_deps
from include.payments.errors import InvalidOrder
from include.payments.order_form import ORDER_FORM, masked
from include.payments.payment_methods import refuse_card_number
from include.payments.settings import get_payment_settings
from segue.airflow.steps import run_task_step
from segue.step_runner import abandon_step

# Tasks that do part of another step: the hybrid DAG's charge is three tasks.
STEP_OF_TASK = {"request_charge": "charge", "await_charge": "charge", "settle_charge": "charge"}

# The saga DAGs: a task retry resumes the saga from its saved state (the saga has its own retries).
SAGA_DEFAULT_ARGS = {"owner": "payments", **retry.SAGA_TASK_RETRIES}


def order_params() -> dict[str, Param]:
    """The trigger form of every payment DAG (one Param per order field)."""
    return {name: Param(**spec) for name, spec in ORDER_FORM.items()}


def payment_default_args() -> dict[str, Any]:
    """The step DAGs' task defaults: retries with backoff from the settings
    (``retry.step_task_retries``), and the failure callback that dead-letters a task whatever
    ended it."""
    return {
        "owner": "payments",
        **retry.step_task_retries(get_payment_settings()),
        "on_failure_callback": dead_letter_failed_task,
    }


def order_from_params(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The task's order from the form, with a stable id when none was given."""
    context = context if context is not None else get_current_context()
    data = dict(context["params"])
    data["order_id"] = data.get("order_id") or pipeline.order_id_for_run(context["run_id"])
    return data


def checked_order_from_params(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``order_from_params``, refusing a card number typed where the token belongs: the task
    fails at once (no retry) with a message naming the field, and the number goes nowhere (no
    XCom, no saga data, no Step Functions input, no log line)."""
    data = order_from_params(context)
    refuse_order_card_number(data)
    return data


def refuse_order_card_number(data: Mapping[str, Any]) -> None:
    """Fail the task at once (AirflowFailException, no retry) when ``data`` holds a card number;
    the message names the field, never the number.

    :param data: the order read from the trigger form
    """
    try:
        refuse_card_number(data)
    except InvalidOrder as exc:
        raise AirflowFailException(str(exc)) from None


@task
def prepare_order() -> dict[str, Any]:
    """The order from the form, with a stable id when none was given (the saga DAGs' input);
    a card number instead of a token fails the task (``checked_order_from_params``)."""
    return checked_order_from_params()


def run_payment_step(step: str, order_id: str, action: Any, payload: Any = None) -> Any:
    """Run one pipeline step with dead-lettering; the order fails if the step is abandoned.

    An abandoned order with no recorded charge is reconciled with the gateway (a charge whose
    answer was lost is refunded) before the task fails.
    """
    deps = default_deps()
    return run_task_step(
        lambda: action(deps),
        engine=deps.engine,
        step=step,
        subject=order_id,
        payload=payload or (lambda: pipeline.order_payload(deps, order_id)),
        on_abandon=pipeline.fail_and_reconcile_on_abandon(deps, order_id),
    )


@task
def validate() -> str:
    """Validate the order from the form and store it (the first step of the linear and hybrid
    DAGs); returns the order id the later tasks take."""
    data = order_from_params()
    order_id = str(data["order_id"])
    return run_payment_step(
        "validate", order_id, lambda d: pipeline.validate(d, data), masked(data)
    )


@task
def update_inventory(order_id: str) -> list[dict[str, Any]]:
    """Reserve the order's stock (the linear and hybrid DAGs' step after the charge).

    :param order_id: the order.
    """
    return run_payment_step(
        "update_inventory", order_id, lambda d: pipeline.update_inventory(d, order_id)
    )


@task
def send_receipt(order_id: str) -> str:
    """Send the order's receipt.

    :param order_id: the order.
    """
    return run_payment_step("send_receipt", order_id, lambda d: pipeline.send_receipt(d, order_id))


@task
def notify_shipping(order_id: str) -> dict[str, Any]:
    """Tell shipping; the order is complete once its receipt and its shipping notice exist.

    :param order_id: the order.
    """
    return run_payment_step(
        "notify_shipping", order_id, lambda d: pipeline.notify_shipping(d, order_id)
    )


def dead_letter_failed_task(context: Mapping[str, Any], deps: PaymentDeps | None = None) -> None:
    """``on_failure_callback`` of the payment tasks and DAGs: whatever ended a task for good (a
    sensor's timeout, a broker that stayed down, its last try SIGKILLed), the step is
    dead-lettered and the order failed, as ``run_payment_step`` does for the failures it sees.
    A step that already did this keeps its first record; a recorded charge is refunded.

    Airflow 3.3 runs no task-level callback when only the task process is killed (its supervisor
    reports the failure, apache/airflow#60858), so the DAGs set this as their DAG-level failure
    callback too: the dag-processor runs it with the task that failed the run as ``ti``.
    """
    ti = context.get("ti")
    if ti is None:  # a run that failed without a failed task (e.g. a dagrun timeout)
        return
    step = STEP_OF_TASK.get(ti.task_id, ti.task_id)
    order_id = str(order_from_params(context)["order_id"])
    deps = deps or default_deps()
    abandon_step(
        deps.engine,
        workflow=ti.dag_id,
        step=step,
        subject=order_id,
        reason=f"task {ti.task_id} failed: {context.get('exception') or 'killed or timed out'}",
        attempts=ti.try_number,
        payload=lambda: pipeline.order_payload(deps, order_id),
        on_abandon=pipeline.fail_and_reconcile_on_abandon(deps, order_id),
    )

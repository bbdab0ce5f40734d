"""What the batched payment DAGs share: their ``@dag`` arguments, the queue's asset and its
watcher, claiming a batch, a step over the batch, the per-order report, and releasing a failed
run's orders.

Airflow-facing glue kept out of ``include/payments`` (which stays free of Airflow imports). The
work itself is ``include.payments.batch_steps`` and ``include.payments.batch_queue``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Asset, AssetWatcher, get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from include.payments import batch_queue, batch_steps, retry
from include.payments.deps import default_deps
from include.payments.settings import get_payment_settings
from segue.airflow.triggers.batch import BatchReadyTrigger

log = logging.getLogger(__name__)
PROBE = "include.payments.batch_queue:ready_now"
TIMELINE = "/segue/orders/{order_id}"  # the plugin's order timeline page


def batch_asset(dag_id: str) -> Asset:
    """The asset that schedules ``dag_id``: a watcher fires when its queue holds a batch
    (``SEGUE_BATCH_MAX_ORDERS`` ready, or the oldest waited ``SEGUE_BATCH_MAX_WAIT_SECONDS``).

    :param dag_id: the batched DAG.
    """
    settings = get_payment_settings()
    trigger = BatchReadyTrigger(
        probe=PROBE,
        probe_kwargs={"dag_id": dag_id},
        max_items=settings.batch_max_orders,
        max_wait_seconds=settings.batch_max_wait_seconds,
        claim_timeout_seconds=settings.batch_claim_timeout_seconds,
    )
    return Asset(
        name=f"{dag_id}_queue",
        uri=f"segue://payments/batch-queue/{dag_id}",
        watchers=[AssetWatcher(name=f"{dag_id}_ready", trigger=trigger)],
    )


def batch_dag_args(
    dag_id: str, *, doc_md: str | None, tags: list[str], default_args: dict[str, Any]
) -> dict[str, Any]:
    """The ``@dag`` arguments of a batched DAG: scheduled by its queue's asset, never paused or
    caught up, at most ``SEGUE_BATCH_MAX_ACTIVE_RUNS`` runs at once, and a failed run's orders
    put back in the queue.

    :param dag_id: the batched DAG.
    :param doc_md: its docs (the DAG file's module docstring).
    :param tags: its tags.
    :param default_args: its tasks' defaults (owner, retries).
    """
    return {
        "dag_id": dag_id,
        "schedule": [batch_asset(dag_id)],
        "catchup": False,
        "is_paused_upon_creation": False,
        "max_active_runs": get_payment_settings().batch_max_active_runs,
        "doc_md": doc_md,
        "tags": tags,
        "on_failure_callback": release_failed_run,
        "default_args": default_args,
    }


def batch_default_args() -> dict[str, Any]:
    """Task defaults of the batched DAGs: a task retry (after a kill, a lost database) redoes
    the batch's step for the orders still at it; per-order failures never fail the task."""
    return {"owner": "payments", **retry.step_task_retries(get_payment_settings())}


def run_ref(context: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The (dag id, run id) of the running task.

    :param context: the task's context (default: the current one).
    """
    context = context if context is not None else get_current_context()
    return context["dag"].dag_id, context["run_id"]


def claim_batch() -> list[str]:
    """Take up to ``SEGUE_BATCH_MAX_ORDERS`` ready orders for this run (a retry gets the same).
    None left (another run took them: the watcher's wake-ups may outnumber the batches) skips
    the run's tasks, so an empty run costs one short task."""
    dag_id, run_id = run_ref()
    settings = get_payment_settings()
    claimed = batch_queue.claim(
        default_deps().engine,
        dag_id,
        run_id,
        settings.batch_max_orders,
        settings.batch_lease_seconds,
    )
    resumed = sum(c.next_step != batch_queue.FIRST_STEP for c in claimed)
    log.info("claimed %d orders (%d resumed after a transient failure)", len(claimed), resumed)
    if not claimed:
        raise AirflowSkipException("no orders ready: other runs took them")
    return [c.order_id for c in claimed]


def run_step_over_batch(step: str, order_ids: Sequence[str]) -> list[str]:
    """Run ``step`` over the run's orders; log each failed or deferred order with its timeline.

    :param step: one of the five steps.
    :param order_ids: every order the run claimed (those not at this step are left alone).
    """
    dag_id, run_id = run_ref()
    logging.getLogger("segue.step_runner").setLevel(logging.WARNING)  # one line per outcome
    result = batch_steps.run_batch_step(
        default_deps(),
        get_payment_settings(),
        workflow=dag_id,
        run_id=run_id,
        step=step,
        order_ids=order_ids,
    )
    log.info(
        "%s: %d succeeded, %d failed, %d to retry in a later run",
        step,
        len(result.succeeded),
        len(result.failed),
        len(result.retrying),
    )
    for order_id, reason in result.failed.items():
        log.warning("order %s failed at %s: %s  %s", order_id, step, reason, link(order_id))
    for order_id, reason in result.retrying.items():
        log.warning("order %s will retry %s: %s  %s", order_id, step, reason, link(order_id))
    return list(order_ids)


def report(order_ids: Sequence[str]) -> dict[str, Any]:
    """Settle the run's finished orders and log one line per order: the answer to "what
    happened to order X" in the run's log; the same per order in the returned XCom.

    :param order_ids: every order the run claimed.
    """
    _, run_id = run_ref()
    outcomes = batch_steps.finish(default_deps(), run_id, order_ids)
    return summarise(outcomes)


def summarise(outcomes: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Log ``outcomes`` (one line per order, with its timeline) and count them by state.

    :param outcomes: ``{order_id: {"state", "outcome", ...}}``.
    """
    counts: dict[str, int] = {}
    for order_id, outcome in sorted(outcomes.items()):
        counts[outcome["state"]] = counts.get(outcome["state"], 0) + 1
        log.info("order %s: %s  %s", order_id, outcome["outcome"], link(order_id))
    log.info("batch: %d orders, %s", len(outcomes), counts)
    return {"counts": counts, "orders": dict(outcomes)}


def link(order_id: str) -> str:
    """The order's timeline page (relative to the api-server).

    :param order_id: the order.
    """
    return TIMELINE.format(order_id=order_id)


def release_failed_run(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of the batched DAGs: a run that failed for good (a task out of
    retries, killed every time) puts its orders back in the queue at once, for the next run to
    resume at the step each reached (the claim's lease would free them later anyway)."""
    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", None)
    if run_id:
        released = batch_queue.release_run(default_deps().engine, str(run_id))
        log.warning("run %s failed: %d orders put back in the queue", run_id, released)


def claim_saga_batch() -> list[dict[str, Any]]:
    """Take up to ``SEGUE_BATCH_MAX_ORDERS`` ready orders for this run: each one's saga data
    (the order's input, as the per-order saga DAG's form gives it)."""
    order_ids = claim_batch()
    inputs = batch_queue.payloads(default_deps().engine, order_ids)
    return [inputs[order_id] for order_id in order_ids]


def settle_sagas(result: Mapping[str, Any]) -> dict[str, Any]:
    """Settle the queue rows of the run's sagas (succeeded: ``done``; failed, compensated or
    parked for a human: ``failed``) and log one line per order with its timeline.

    :param result: ``RunSagaBatchOperator``'s XCom (``instances``: id → state, status, error).
    """
    _, run_id = run_ref()
    instances: Mapping[str, Mapping[str, Any]] = result.get("instances", {})
    outcomes = batch_steps.settle_sagas(default_deps(), run_id, instances)
    return summarise(outcomes)

"""One payment step over a whole batch of queued orders, with ``payment_pipeline``'s per-order
semantics (what ``payment_pipeline_batch`` runs; no Airflow here).

Each order's step runs in its own transaction through ``segue.step_runner.run_step``, exactly as
the per-order DAG's task does, so one order's failure touches no other order:

- a business failure (declined card, invalid order, no stock) or a step out of tries is
  dead-lettered, the order failed (and its money settled) and its queue row settled, all in one
  transaction; its later steps don't run;
- a transient failure (gateway 5xx or timeout, a lost connection) puts the order back in the
  queue with an exponential backoff (``retry_delay_seconds`` doubling up to
  ``max_retry_delay_seconds``); a later batch run resumes it at this step, up to ``retries``
  retries of the step;
- the orders whose step succeeded move on together: one UPDATE records it for the batch.

Effects happen once: every step is idempotent (unique keys; the gateway charge carries the
idempotency key ``<order_id>:charge``), so a task retried after a kill redoes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from include.payments import batch_queue, pipeline
from include.payments.deps import PaymentDeps
from include.payments.order_form import masked
from include.payments.settings import PaymentSettings
from segue.step_runner import StepAbandoned, run_step
from segue.store.engine import session_scope

log = logging.getLogger(__name__)
STEPS = pipeline.STEP_NAMES
DONE_STEP = "done"


@dataclass
class StepResult:
    """What one step did to a batch: ids that succeeded, failed for good, or wait for a retry."""

    step: str
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retrying: dict[str, str] = field(default_factory=dict)

    def as_xcom(self) -> dict[str, Any]:
        """JSON-safe summary (counts and the failed and retrying orders with their reasons)."""
        return {
            "step": self.step,
            "succeeded": len(self.succeeded),
            "failed": self.failed,
            "retrying": self.retrying,
        }


def backoff_seconds(settings: PaymentSettings, attempt: int) -> float:
    """The wait before try ``attempt + 1`` of a step: the first delay doubling, capped.

    :param settings: retry delays (``SEGUE_RETRY_DELAY_SECONDS``, ``..._MAX_...``).
    :param attempt: the tries made so far (1 after the first failure).
    """
    delay = settings.retry_delay_seconds * 2 ** max(attempt - 1, 0)
    return float(min(delay, settings.max_retry_delay_seconds))


def next_step(step: str) -> str:
    """The step after ``step`` (``done`` after the last).

    :param step: one of ``pipeline.STEP_NAMES``.
    """
    index = STEPS.index(step)
    return STEPS[index + 1] if index + 1 < len(STEPS) else DONE_STEP


def _action(step: str, deps: PaymentDeps, order_id: str, data: dict[str, Any] | None) -> Any:
    if step == "validate":
        return pipeline.validate(deps, data or {})
    return getattr(pipeline, step)(deps, order_id)


def run_batch_step(
    deps: PaymentDeps,
    settings: PaymentSettings,
    *,
    workflow: str,
    run_id: str,
    step: str,
    order_ids: Sequence[str],
) -> StepResult:
    """Run ``step`` for every order of ``order_ids`` that ``run_id`` holds at that step.

    Orders failed or put back by an earlier step, and orders resumed past this step, are
    left alone. Returns what happened to each order it ran.

    :param deps: the business store and the gateway client.
    :param settings: retries, delays and how many orders run at once.
    :param workflow: the DAG id (named in dead letters).
    :param run_id: the DAG run holding the orders.
    :param step: one of ``pipeline.STEP_NAMES``.
    :param order_ids: the run's orders, in claim order.
    """
    held = batch_queue.live(deps.engine, run_id, order_ids)
    todo = [o for o in order_ids if o in held and held[o][0] == step]
    inputs = batch_queue.payloads(deps.engine, todo) if step == "validate" else {}
    result = StepResult(step)

    def one(order_id: str) -> tuple[str, str, str]:
        attempt = held[order_id][1] + 1
        data = inputs.get(order_id)
        try:
            run_step(
                lambda: _action(step, deps, order_id, data),
                engine=deps.engine,
                workflow=workflow,
                step=step,
                subject=order_id,
                payload=masked(data) if data else (lambda: pipeline.order_payload(deps, order_id)),
                attempt=attempt,
                max_attempts=settings.retries + 1,
                on_abandon=_abandon(deps, order_id),
            )
        except StepAbandoned as exc:
            return order_id, "failed", exc.reason
        except Exception as exc:  # retryable with tries left: a later run takes it again
            delay = backoff_seconds(settings, attempt)
            with session_scope(deps.engine) as session:
                batch_queue.release(session, order_id, run_id, step, attempt, delay)
            return (
                order_id,
                "retrying",
                f"{type(exc).__name__}: {exc} (try {attempt}, next in {delay:g} s)",
            )
        return order_id, "succeeded", ""

    with ThreadPoolExecutor(max_workers=settings.batch_step_threads) as pool:
        outcomes = list(pool.map(one, todo))
    for order_id, outcome, reason in outcomes:
        if outcome == "succeeded":
            result.succeeded.append(order_id)
        elif outcome == "failed":
            result.failed[order_id] = reason
        else:
            result.retrying[order_id] = reason
    batch_queue.advance(deps.engine, run_id, result.succeeded, next_step(step))
    return result


def _abandon(deps: PaymentDeps, order_id: str) -> Callable[[Session, str], object]:
    """``payment_pipeline``'s abandon (fail the order, settle its money) plus the queue row."""
    settle = pipeline.fail_and_reconcile_on_abandon(deps, order_id)

    def abandon(session: Session, reason: str) -> None:
        settle(session, reason)
        batch_queue.mark_failed(session, order_id, reason)

    return abandon


def finish(deps: PaymentDeps, run_id: str, order_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Settle the orders ``run_id`` took all the way (queue rows ``done``) and say what
    happened to each of ``order_ids``: ``{order_id: {"state", "step", "outcome"}}``.

    :param deps: the business store.
    :param run_id: the DAG run.
    :param order_ids: every order the run claimed.
    """
    held = batch_queue.live(deps.engine, run_id, order_ids)
    batch_queue.mark_done(
        deps.engine, run_id, [o for o, (step, _) in held.items() if step == DONE_STEP], "completed"
    )
    report: dict[str, dict[str, str]] = {}
    for row in batch_queue.rows_of(deps.engine, order_ids):
        if row.state == batch_queue.QUEUED:
            outcome = f"retry in a later run at {row.next_step} (try {row.attempts + 1})"
        elif row.state == batch_queue.CLAIMED and row.claimed_by != run_id:
            outcome = f"taken over by run {row.claimed_by}"
        else:
            outcome = row.outcome or row.state
        report[row.order_id] = {"state": row.state, "step": row.next_step, "outcome": outcome}
    return report


def settle_sagas(
    deps: PaymentDeps, run_id: str, instances: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, str]]:
    """Settle the queue rows of a batch run's saga instances by how each ended.

    :param deps: the business store.
    :param run_id: the DAG run.
    :param instances: instance (order) id → ``{"state", "status", "error"}``.
    """
    succeeded = [i for i, v in instances.items() if v["status"] == "succeeded"]
    batch_queue.mark_done(deps.engine, run_id, succeeded, "completed")
    report: dict[str, dict[str, str]] = {i: _saga_outcome(instances[i]) for i in succeeded}
    with session_scope(deps.engine) as session:
        for instance_id, value in instances.items():
            if value["status"] != "succeeded":
                outcome = _saga_outcome(value)
                batch_queue.mark_failed(session, instance_id, outcome["outcome"])
                report[instance_id] = outcome
    return report


def _saga_outcome(value: Mapping[str, Any]) -> dict[str, str]:
    text = "completed" if value["status"] == "succeeded" else f"saga {value['status']}"
    if value.get("error"):
        text += f": {value['error']}"
    state = "done" if value["status"] == "succeeded" else "failed"
    return {"state": state, "step": str(value["state"]), "outcome": text}

"""Every retry policy of the payment workflow, in one place: how patiently each kind of work is
tried again on a retryable failure (``errors.PaymentError.retryable``).

- Saga steps (``RetryPolicy``, the saga runner's own retries): gateway calls and store writes.
- Airflow tasks (``retries`` and friends, as ``default_args``): the step DAGs' tasks take theirs
  from the settings (``SEGUE_RETRIES``, ...); a saga DAG's task retry only resumes its saga
  from the saved state (the saga retries its steps itself); the follow-up and AWS export DAGs'.

Plain values (no Airflow import): ``include.payment_dags`` and the DAG files pass them on.
Business failures (a declined card, an invalid order) are never retried, whatever the policy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.payments.settings import PaymentSettings
from segue.statemachine.definition import RetryPolicy

# --- saga steps ------------------------------------------------------------------------------

GATEWAY_RETRY = RetryPolicy(
    max_attempts=4, backoff_seconds=2, backoff_rate=2, max_delay_seconds=30, jitter=0.2
)
"""Saga steps that call the payment gateway (CHARGING, and the bridged saga's command)."""

STORE_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=1, backoff_rate=2, max_delay_seconds=10)
"""Saga steps that only write the business store."""

# --- Airflow tasks ---------------------------------------------------------------------------

TASK_BACKOFF_RATE = 2.0  # Airflow's retry_exponential_backoff: each delay doubles
MAX_TASK_RETRY_DELAY = timedelta(minutes=5)


def task_retries(
    retries: int, first_delay: timedelta, max_delay: timedelta = MAX_TASK_RETRY_DELAY
) -> dict[str, Any]:
    """Airflow ``default_args`` for ``retries`` tries after the first, with doubling delays.

    Parameters:
        retries: how many times a failed task is tried again.
        first_delay: the delay before the first retry.
        max_delay: the upper bound of any delay.
    """
    return {
        "retries": retries,
        "retry_delay": first_delay,
        "retry_exponential_backoff": TASK_BACKOFF_RATE,
        "max_retry_delay": max_delay,
    }


def step_task_retries(settings: PaymentSettings) -> dict[str, Any]:
    """The step DAGs' tasks (one payment step each): from the process's ``settings``."""
    return task_retries(
        settings.retries,
        timedelta(seconds=settings.retry_delay_seconds),
        timedelta(seconds=settings.max_retry_delay_seconds),
    )


SAGA_TASK_RETRIES = task_retries(2, timedelta(seconds=10))
"""A saga DAG's tasks: a retry resumes the saga from its saved state."""

FOLLOWUP_TASK_RETRIES = task_retries(3, timedelta(seconds=10))
"""The charge-failed follow-up DAG's task (an idempotent insert per event)."""

AWS_EXPORT_TASK_RETRIES = task_retries(2, timedelta(seconds=30))
"""The Step Functions export DAG's tasks (AWS API calls)."""

RECONCILIATION_TASK_RETRIES = task_retries(2, timedelta(minutes=1))
"""The reconciliation DAG's task: a retry redoes the same run (keyed refunds, unique findings)."""

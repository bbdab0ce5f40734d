"""Run a plain-Python workflow step inside an Airflow task with Segue's retry semantics.

Airflow owns the retries and their backoff; :func:`segue.step_runner.run_step` decides when a
failure is final, dead-letters it, and this module turns that into ``AirflowFailException``
so Airflow fails the task at once instead of retrying a declined card.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue import tracing
from segue.step_runner import StepAbandoned, run_step

T = TypeVar("T")


def run_task_step(
    action: Callable[[], T],
    *,
    engine: Engine,
    step: str,
    subject: str,
    payload: Any | Callable[[], Any],
    on_abandon: Callable[[Session, str], object] | None = None,
) -> T:
    """Run ``action`` as this task's work; the attempt budget is the task's retries + 1."""
    ti = get_current_context()["ti"]
    tracing.ensure_configured("airflow-task")
    tracing.link_enclosing(subject)  # Airflow's task span points at the order's trace
    try:
        return run_step(
            action,
            engine=engine,
            workflow=ti.dag_id,
            step=step,
            subject=subject,
            payload=payload,
            attempt=ti.try_number,
            max_attempts=ti.max_tries + 1,
            on_abandon=on_abandon,
        )
    except StepAbandoned as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        tracing.flush()  # the task process may end without running atexit hooks

"""A task process SIGKILLed on every try still leaves its dead letter.

The step runner can't record a try that is killed, and Airflow 3.3 runs no task-level failure
callback when only the task process dies (its supervisor reports the failure;
apache/airflow#60858). The payment DAGs' DAG-level failure callback, run by the dag-processor
with the failed task in its context, dead-letters it. Here ``validate`` is held on a table lock
and its process killed on each of its tries; the dead letter must appear anyway.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest
from sqlalchemy import Engine, text

from segue.store.dead_letters import dead_letters_for
from segue.store.engine import session_scope
from tests.e2e.conftest import E2E_RETRIES
from tests.polling import wait_for
from tools.chaos.faults import task_process

pytestmark = pytest.mark.e2e
DAG_ID = "payment_pipeline"


@contextmanager
def orders_locked(engine: Engine) -> Iterator[None]:
    """Hold an exclusive lock on ``orders``: ``validate`` blocks on its insert until released."""
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()


def kill_running_try(api, run_id: str, try_number: int) -> None:
    def running_process() -> psutil.Process | None:
        ti = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/validate")
        if ti["state"] != "running" or ti["try_number"] != try_number:
            return None
        return task_process(ti["id"])

    process = wait_for(running_process, timeout=180, what=f"try {try_number} running", interval=0.5)
    os.kill(process.pid, signal.SIGKILL)


def test_a_task_killed_on_every_try_is_dead_lettered(airflow_api, engine, order_data):
    conf = order_data()
    with orders_locked(engine):
        run_id = airflow_api.trigger_dag_run(DAG_ID, conf)
        for try_number in range(1, E2E_RETRIES + 2):
            kill_running_try(airflow_api, run_id, try_number)
    run = airflow_api.wait_for_run(DAG_ID, run_id, timeout=240)
    states = airflow_api.task_states(DAG_ID, run_id)
    assert run["state"] == "failed" and states["validate"] == "failed", states

    def dead_letters() -> list[tuple[str, int]]:
        with session_scope(engine) as session:
            letters = dead_letters_for(session, conf["order_id"])
            return [(d.step, d.attempts) for d in letters]

    letters = wait_for(dead_letters, timeout=120, what="the dead letter", interval=1)
    assert letters == [("validate", E2E_RETRIES + 1)]

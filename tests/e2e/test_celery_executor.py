"""The DAG and saga paths on Airflow's CeleryExecutor, with a real ``airflow celery worker``.

One Celery stack for the module (``AirflowStack(executor="celery")``): its own metadata
database (also Celery's result backend), its own business store (the session's e2e Airflow
watches the session's batch queue), a RabbitMQ vhost of its own as Celery's broker, a queue of
its own, and another vhost for the event path's ``segue_amqp``. Every DAG in
``DAG_ORDERS`` gets one order at module start (their runs overlap, which keeps the module
short); each test then checks its order's outcome in the business store and at the gateway,
and that each task instance of its run went through Celery: sent to this stack's queue, a
Celery task id recorded by the scheduler, that task's SUCCESS in the result backend, and the
worker's log line executing that very task instance.

The batched DAGs (``payment_pipeline_batch``, ``payment_state_machine_batch``) take their
orders as production feeds them: through the front door (``intake_http.place`` with batching
on, the traffic split pinned to the DAG's path) into the batch queue, where the triggerer's
``BatchReadyTrigger`` has a run created that claims it; the run checked is the one the order's
``batch_orders`` row names, and it is the DAG's only run (``SEGUE_BATCH_CLAIM_TIMEOUT_SECONDS``
is raised for Celery's slower start, so a late claim makes no second, empty run).

A new DAG runs here by adding it to ``DAG_ORDERS`` (with ``trigger_with_conf`` when an order
in the run's conf is how it takes one, ``through_the_batch_queue`` for a batched DAG).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from include.payments.catalog import seed_catalog
from include.payments.database import payments_engine
from include.payments.gateway_client import GatewayClient
from include.payments.routing import BATCH_DAG_OF_PATH, BatchOrderRow
from include.payments.tables import ChargeRow, OrderRow
from include.services import intake_http
from include.services.front_door import flag_router
from segue.store.engine import session_scope
from tests.conftest import order_of, pin_split
from tests.polling import wait_for
from tools.airflow_api import AirflowApi
from tools.airflow_celery import WORKER, CeleryOptions
from tools.airflow_stack import AirflowStack
from tools.broker import fresh_vhost
from tools.gateway import GatewayProcess
from tools.ports import unused_port
from tools.sandbox import fresh_database

# The module's first test also pays for starting the stack (about 2 minutes on a quiet 2-core
# machine, over 10 with load average 40): pytest-timeout's 600 s is too short for that.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
NAME = f"celery-e2e-{os.getpid()}"
RUN_TIMEOUT_SECONDS = 900

# A DAG's way of taking one order (through Airflow's API or the business store): start it,
# return the run id.
Place = Callable[[AirflowApi, Engine, str, dict[str, Any]], str]


def trigger_with_conf(api: AirflowApi, engine: Engine, dag_id: str, order: dict[str, Any]) -> str:
    """The order as the run's conf (the trigger form's way)."""
    return api.trigger_dag_run(dag_id, order)


def through_the_batch_queue(
    api: AirflowApi, engine: Engine, dag_id: str, order: dict[str, Any]
) -> str:
    """The front door's way (production's): the split pinned to the path whose batched DAG is
    ``dag_id``, the order placed with batching on; the run that claimed it from the queue."""
    path = next(path for path, batch_dag in BATCH_DAG_OF_PATH.items() if batch_dag == dag_id)
    order_id = str(order["order_id"])
    pin_split(engine, path, reason=f"Celery e2e of {dag_id}")
    _, placed_on = intake_http.place(engine, order_of(order), NAME, flag_router(), batch=True)
    assert placed_on == path, f"{order_id} went to {placed_on!r}, not {path!r}"

    def claiming_run() -> str:
        with session_scope(engine) as session:
            row = session.get(BatchOrderRow, order_id)
            return row.runs.split()[0] if row is not None and row.runs else ""

    what = f"a {dag_id} run to claim {order_id} (batch_orders.runs still empty)"
    return wait_for(claiming_run, timeout=RUN_TIMEOUT_SECONDS, what=what, interval=1)


# The batched DAG last: its Place waits for a run to claim the order, while the others run.
DAG_ORDERS: dict[str, Place] = {
    "payment_pipeline": trigger_with_conf,
    "payment_state_machine": trigger_with_conf,
    "payment_pipeline_batch": through_the_batch_queue,
    "payment_state_machine_batch": through_the_batch_queue,
}


def new_order() -> dict[str, Any]:
    """A valid order with an id of its own (as the trigger form would send it)."""
    return {
        "order_id": f"ord-celery-{uuid.uuid4().hex[:16]}",
        "customer_email": "ada@example.com",
        "payment_method": "pm_card_visa",
        "amount": "49.99",
        "currency": "USD",
        "items": [{"sku": "SKU-MUG", "quantity": 1}],
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
    }


@dataclass
class CeleryStack:
    stack: AirflowStack
    api: AirflowApi
    options: CeleryOptions
    engine: Engine  # the stack's own business store
    runs: dict[str, tuple[str, dict[str, Any]]]  # DAG id -> (run id, order)


@pytest.fixture(scope="module")
def celery_stack(
    tmp_path_factory: pytest.TempPathFactory,
    gateway_process: GatewayProcess,
) -> Iterator[CeleryStack]:
    home = tmp_path_factory.mktemp("celery-airflow-home")
    # A business store of its own: the session's e2e Airflow runs payment_pipeline_batch too,
    # and its batch-queue watcher would claim this stack's orders from a shared queue.
    with (
        fresh_database(f"{NAME}_business".replace("-", "_")) as business_url,
        fresh_database(NAME.replace("-", "_")) as metadata_url,
        fresh_vhost(NAME) as broker_url,
        fresh_vhost(f"{NAME}-events") as events_url,
    ):
        engine = payments_engine(business_url)
        with session_scope(engine) as session:
            seed_catalog(session)
        options = CeleryOptions(
            broker_url=broker_url,
            queue=NAME,
            worker_name=f"{NAME}@%h",
            concurrency=2,
            log_server_port=unused_port(),
        )
        stack = AirflowStack(
            home=Path(home),
            metadata_url=metadata_url,
            port=unused_port(),
            dag_refresh_seconds=5,
            executor="celery",
            celery=options,
            extra_env={
                "SEGUE_DATABASE_URL": business_url,
                "SEGUE_GATEWAY_URL": gateway_process.url,
                "SEGUE_AMQP_URL": events_url,
                "SEGUE_RETRIES": "2",
                "SEGUE_RETRY_DELAY_SECONDS": "1",
                "SEGUE_MAX_RETRY_DELAY_SECONDS": "2",
                # A Celery worker can take longer than the default 20 s to start a batched run
                # and claim its batch; the watcher would then announce it again (an empty run).
                "SEGUE_BATCH_CLAIM_TIMEOUT_SECONDS": "180",
                # Only the DAGs under test run (unpaused below): no scheduled runs competing.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            },
        )
        stack.start()
        try:
            stack.wait_ready(timeout=1500)
            api = stack.api()
            runs = {}
            for dag_id in DAG_ORDERS:
                api.wait_for_dag(dag_id, timeout=600)
                unpaused = api.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
                assert unpaused.status_code == 200, unpaused.text
            for dag_id, place in DAG_ORDERS.items():
                order = new_order()
                runs[dag_id] = (place(api, engine, dag_id, order), order)
            yield CeleryStack(stack, api, options, engine, runs)
            api.close()
        finally:
            stack.stop()
            engine.dispose()


def ran_on_celery(celery: CeleryStack, dag_id: str, run_id: str) -> list[str]:
    """What contradicts "every task instance of the run was executed by this stack's Celery
    worker" (empty when nothing does)."""
    problems = []
    tis = celery.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    worker_lines = [
        line
        for line in celery.stack.log_path.read_text(errors="replace").splitlines()
        if line.startswith(f"{WORKER:14} |") and "Executing workload in Celery" in line
    ]
    metadata = create_engine(celery.stack.metadata_url)
    try:
        with metadata.connect() as db:
            for ti in tis:
                if ti["queue"] != celery.options.queue:
                    problems.append(f"{ti['task_id']}: queue {ti['queue']!r}")
                celery_id = db.scalar(
                    text("SELECT external_executor_id FROM task_instance WHERE id = :id"),
                    {"id": ti["id"]},
                )
                if not celery_id:
                    problems.append(f"{ti['task_id']}: no Celery task id")
                    continue
                status = db.scalar(
                    text("SELECT status FROM celery_taskmeta WHERE task_id = :id"),
                    {"id": celery_id},
                )
                if status != "SUCCESS":
                    problems.append(f"{ti['task_id']}: Celery task {celery_id} is {status}")
                if not any(
                    f"[{celery_id}]" in line and f"id=UUID('{ti['id']}')" in line
                    for line in worker_lines
                ):
                    problems.append(f"{ti['task_id']}: the worker's log never ran {celery_id}")
    finally:
        metadata.dispose()
    return problems if tis else ["the run has no task instances"]


@pytest.mark.parametrize("dag_id", list(DAG_ORDERS))
def test_order_completes_on_a_celery_worker(
    celery_stack: CeleryStack, dag_id: str, gateway_process: GatewayProcess
) -> None:
    engine = celery_stack.engine
    run_id, order = celery_stack.runs[dag_id]
    order_id = str(order["order_id"])
    run = celery_stack.api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT_SECONDS)
    assert run["state"] == "success", celery_stack.api.task_states(dag_id, run_id)
    if DAG_ORDERS[dag_id] is through_the_batch_queue:  # one batch, one run: none empty
        runs = celery_stack.api.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]
        assert [r["dag_run_id"] for r in runs] == [run_id]
    with session_scope(engine) as session:
        assert session.get(OrderRow, order_id).status == "completed"
        charges = select(func.count()).where(ChargeRow.order_id == order_id)
        assert session.scalar(charges.select_from(ChargeRow)) == 1
    gateway = GatewayClient(gateway_process.url)
    try:
        attempts = gateway.list_charges(reference=order_id)
    finally:
        gateway.close()
    assert [charge.status for charge in attempts] == ["succeeded"]
    # The worker stores a task's Celery result after the task reported success to Airflow: wait
    # for the last one to land (a CI run read one task still STARTED).
    deadline = time.monotonic() + 30
    while (problems := ran_on_celery(celery_stack, dag_id, run_id)) and time.monotonic() < deadline:
        time.sleep(1)
    assert problems == []


def test_the_worker_healthcheck_pings_the_worker(celery_stack: CeleryStack) -> None:
    """The command docker-compose's airflow-worker healthcheck runs, against a real worker."""
    node = celery_stack.options.worker_name.replace("%h", socket.gethostname())

    def ping(name: str) -> int:
        command = [sys.executable, "-m", "tools.airflow_celery", "--ping", name]
        env = celery_stack.stack.env()
        return subprocess.run(command, env=env, capture_output=True, timeout=120).returncode

    assert ping(node) == 0
    assert ping(f"nobody-{NAME}@{socket.gethostname()}") == 1

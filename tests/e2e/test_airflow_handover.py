"""The hand-over of DAG-bound orders to a real Airflow, with the real intake relay and the
airflow-handover service as processes: orders accepted while the api-server is unreachable are
triggered once it is back, and a hand-over (and an intake) SIGKILLed mid-hand-over still leads
to exactly one successful DAG run and one charge per order."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.routing import DAG_OF_PATH, dag_run_id_for
from include.payments.tables import ChargeRow, OrderRow
from include.services.intake import place_order
from segue.store.engine import session_scope
from tests.conftest import order_of
from tests.e2e.tcp_gate import TcpGate
from tools.services import ServiceProcess, start_services

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 600


@pytest.fixture(scope="module")
def api(airflow_api):
    for dag_id in DAG_OF_PATH.values():
        airflow_api.wait_for_dag(dag_id)
    return airflow_api


@pytest.fixture
def make_order(order_data):
    return lambda **overrides: order_of(order_data(**overrides))


@pytest.fixture
def gate(airflow_stack) -> Iterator[TcpGate]:
    gate = TcpGate(airflow_stack.port)
    yield gate
    gate.close()


@pytest.fixture
def fleet(airflow_stack, pg_url, gateway_process, gate, tmp_path) -> Iterator[dict]:
    """The intake (its relay publishes what place_order queued) and the hand-over, which
    reaches Airflow only through ``gate``."""
    with start_services(
        {
            "intake": "include.services.intake_http",
            "airflow-handover": "include.services.airflow_handover",
        },
        database_url=pg_url,
        amqp_url=airflow_stack.extra_env["SEGUE_AMQP_URL"],
        gateway_url=gateway_process.url,
        log_dir=tmp_path,
        extra_env={
            "SEGUE_INTAKE_PORT": "0",
            "SEGUE_AIRFLOW_API_URL": gate.url,
            "SEGUE_AIRFLOW_USERNAME": "admin",
            "SEGUE_AIRFLOW_PASSWORD": airflow_stack.admin_password(),
        },
    ) as services:
        yield services


def place(engine, orders: list[Order], path: str) -> None:
    with session_scope(engine) as session:
        for order in orders:
            place_order(session, order, path, client="e2e")  # type: ignore[arg-type]


def runs_by_order(api, dag_ids: set[str], order_ids: set[str]) -> Counter[str]:
    """How many runs of ``dag_ids`` process each of ``order_ids`` (by the run's conf)."""
    counts: Counter[str] = Counter()
    for dag_id in dag_ids:
        runs = api.get(f"/dags/{dag_id}/dagRuns", limit=1000)["dag_runs"]
        for run in runs:
            order_id = (run.get("conf") or {}).get("order_id")
            if order_id in order_ids:
                counts[order_id] += 1
    return counts


def wait_until(predicate, what: str, timeout: float = 120, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def assert_one_successful_run_and_charge_each(
    api, engine, gateway_url: str, orders: list[Order], path_of: dict[str, str]
) -> None:
    for order in orders:
        dag_id = DAG_OF_PATH[path_of[order.order_id]]
        run_id = dag_run_id_for(order.order_id)
        path = f"/dags/{dag_id}/dagRuns/{run_id}"
        wait_until(
            lambda path=path: api.request("GET", path).status_code == 200,
            f"run {run_id}",
            timeout=RUN_TIMEOUT,
        )
        run = api.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
        assert run["state"] == "success", api.task_states(dag_id, run_id)
        assert run["conf"]["order_id"] == order.order_id
        assert "handed over by airflow-handover" in (run.get("note") or "")
    ids = {order.order_id for order in orders}
    counts = runs_by_order(api, set(DAG_OF_PATH.values()), ids)
    assert counts == Counter({order_id: 1 for order_id in ids})
    ledger = GatewayClient(gateway_url)
    try:
        with session_scope(engine) as session:
            for order_id in ids:
                charges = select(func.count()).select_from(ChargeRow)
                assert session.scalar(charges.where(ChargeRow.order_id == order_id)) == 1
                assert session.get(OrderRow, order_id).status == "completed"
                assert len(ledger.list_charges(reference=order_id)) == 1
    finally:
        ledger.close()


def test_orders_accepted_while_airflow_is_unreachable_are_triggered_once_it_is_back(
    api, fleet, gate, engine, gateway_url, make_order
):
    handover: ServiceProcess = fleet["airflow-handover"]
    dag_orders = [make_order(), make_order()]
    saga_orders = [make_order()]
    place(engine, dag_orders, "dag")
    place(engine, saga_orders, "saga")
    orders = dag_orders + saga_orders
    path_of = {o.order_id: "dag" for o in dag_orders} | {o.order_id: "saga" for o in saga_orders}

    # The gate is closed: connection refused, as with the api-server stopped.
    wait_until(
        lambda: handover.metrics()["counts"].get("not_yet", 0) >= 2 * len(orders),
        "retries while Airflow is unreachable",
    )
    assert handover.metrics()["counts"].get("parked", 0) == 0
    assert runs_by_order(api, set(DAG_OF_PATH.values()), set(path_of)) == Counter()

    gate.open()  # Airflow is back
    assert_one_successful_run_and_charge_each(api, engine, gateway_url, orders, path_of)
    assert "Airflow unreachable" in handover.log_tail(2000)  # the outage was seen and logged


def test_a_handover_killed_between_triggering_and_acking_leaves_one_run_per_order(
    api, fleet, gate, engine, gateway_url, make_order
):
    handover: ServiceProcess = fleet["airflow-handover"]
    intake: ServiceProcess = fleet["intake"]
    handover.stop()  # the orders queue up in its durable queue meanwhile
    orders = [make_order() for _ in range(8)]
    ids = {order.order_id for order in orders}
    place(engine, orders, "dag")
    intake.kill()  # the front door's relay dies too, maybe after publishing, before deleting
    intake.restart()

    gate.delay = 0.25  # a slow api-server: the batch's triggers take a few seconds
    gate.open()
    handover.start()
    dags = {"payment_pipeline"}
    wait_until(lambda: runs_by_order(api, dags, ids), "the first run", every=0.1)
    handover.kill()  # runs triggered, their messages not acked
    triggered_before_the_kill = sum(runs_by_order(api, dags, ids).values())
    assert triggered_before_the_kill < len(orders)

    gate.delay = 0.0
    handover.restart()
    assert_one_successful_run_and_charge_each(
        api, engine, gateway_url, orders, dict.fromkeys(ids, "dag")
    )
    assert "already handed over" in handover.log_tail(2000)  # 409 on the redelivery: success

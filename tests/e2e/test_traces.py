"""One connected trace per order on the DAG, saga and hybrid paths, through the real front door
and a real Airflow.

Orders are POSTed to the intake process (which opens each order's root span), handed to
Airflow by the airflow-handover process, and run by ``payment_pipeline``,
``payment_state_machine`` and ``payment_hybrid`` (its charge by the charge service). Every
process, the Airflow task processes included, exports over OTLP/HTTP to the session's receiver
(``tests/e2e/conftest.py``). Each order's spans must form one tree under its root. (Airflow's
own ``worker.<task>`` spans, with ``[traces] otel_on``, would link to the order's root:
``tests/segue/test_tracing.py`` checks the link both ways.)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from include.payments.routing import DAG_OF_PATH, dag_run_id_for
from include.services import AIRFLOW_PROCESSES
from include.services.api_clients import create_client
from include.services.front_door import route_everything_to
from segue.store.engine import session_scope
from segue.tracing import order_context, order_trace_id
from tests.otlp_receiver import ReceivedSpan, Receiver, assert_one_connected_trace
from tools.airflow_api import AirflowApi
from tools.airflow_stack import AirflowStack
from tools.ports import unused_port
from tools.services import start_services

pytestmark = pytest.mark.e2e

PROCESSES = {
    "intake": "include.services.intake_http",
    "charge": "include.services.charge",
    **AIRFLOW_PROCESSES,
}
PIPELINE_STEPS = {"validate", "charge", "update_inventory", "send_receipt", "notify_shipping"}


@pytest.fixture
def front_door(
    airflow_stack: AirflowStack,
    otlp: Receiver,
    pg_url: str,
    gateway_url: str,
    engine: Engine,
    tmp_path: Path,
) -> Iterator[tuple[str, str]]:
    """(intake URL, API key): the intake, the charge service and the hand-over, traced."""
    port = unused_port()
    with session_scope(engine) as session:
        api_key = create_client(session, "trace-tests")
    with start_services(
        PROCESSES,
        database_url=pg_url,
        amqp_url=airflow_stack.extra_env["SEGUE_AMQP_URL"],  # the vhost its tasks publish on
        gateway_url=gateway_url,
        log_dir=tmp_path / "services",
        extra_env={
            "SEGUE_INTAKE_PORT": str(port),
            "SEGUE_AIRFLOW_API_URL": airflow_stack.url,
            "SEGUE_AIRFLOW_USERNAME": "admin",
            "SEGUE_AIRFLOW_PASSWORD": airflow_stack.admin_password(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    ):
        yield f"http://127.0.0.1:{port}", api_key


def place_on(engine: Engine, front_door: tuple[str, str], path: str, order: dict) -> None:
    """Route every new order to ``path``, then POST ``order`` to the intake."""
    route_everything_to(engine, path, actor="tests", reason=f"trace test: {path}")
    time.sleep(0.6)  # the intake's flag cache refreshes every 0.25 s
    url, key = front_door
    response = httpx.post(
        f"{url}/orders", json=order, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 202 and response.json()["path"] == path, response.text


def structured_events(log: str) -> list[dict]:
    """The events of a task log as the REST API serves it: a JSON document whose ``content``
    holds them, or (asked for NDJSON) one JSON object per line."""
    try:
        document = json.loads(log)
    except ValueError:
        return [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    content = document.get("content", []) if isinstance(document, dict) else document
    return [event for event in content if isinstance(event, dict)]


def finished(spans: list[ReceivedSpan], path: str) -> bool:
    """True once the spans of every process and of the path's last step are in."""
    if not {"intake", "airflow-handover", "airflow-task"} <= {span.service for span in spans}:
        return False
    if path == "saga":
        return sum(span.name.startswith("saga ") for span in spans) >= 5
    return any(span.attributes.get("segue.step") == "notify_shipping" for span in spans)


def test_each_dag_saga_and_hybrid_order_is_one_connected_trace(
    front_door, airflow_api: AirflowApi, otlp: Receiver, engine: Engine, order_data
) -> None:
    orders = {path: f"ord-trace-{path}-{uuid.uuid4().hex[:8]}" for path in DAG_OF_PATH}
    for path, order_id in orders.items():
        place_on(engine, front_door, path, order_data(order_id=order_id))
    for path, order_id in orders.items():
        dag_id, run_id = DAG_OF_PATH[path], dag_run_id_for(order_id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the hand-over triggers the run a moment later
            try:
                found = airflow_api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
                if found.status_code == 200:
                    break
            except httpx.TimeoutException:  # a busy api-server: ask again
                pass
            time.sleep(1)
        run = airflow_api.wait_for_run(dag_id, run_id, timeout=240)
        assert run["state"] == "success", airflow_api.task_states(dag_id, run_id)

    for path, order_id in orders.items():
        trace_id = order_trace_id(order_id)
        otlp.wait_for(  # task spans are exported as they end; the services' within 0.2 s
            lambda t=trace_id, p=path: finished(otlp.trace(t), p),
            what=f"the spans of the {path} order",
        )
        spans = otlp.trace(trace_id)
        assert_one_connected_trace(spans, f"{order_context(order_id).span_id:016x}")
        services = {span.service for span in spans}
        assert {"intake", "airflow-handover", "airflow-task"} <= services, services
        names = {span.name for span in spans}
        if path == "saga":
            assert sum(name.startswith("saga ") for name in names) >= 5, names
        else:
            steps = {s.attributes.get("segue.step") for s in spans if "segue.step" in s.attributes}
            assert steps >= PIPELINE_STEPS - ({"charge"} if path == "hybrid" else set()), steps
        if path == "hybrid":
            assert "charge segue.payments.ChargeRequested" in names, names

    # The step's log lines carry the order's fields in Airflow's task log (read over REST).
    order_id = orders["dag"]
    log = airflow_api.task_log(DAG_OF_PATH["dag"], dag_run_id_for(order_id), "charge", 1)
    lines = structured_events(log)
    [started] = [
        line for line in lines if str(line.get("event", "")).startswith("step charge started")
    ]
    assert started["order_id"] == order_id and started["step"] == "charge"
    assert started["trace_id"] == order_trace_id(order_id)
    assert started["span_id"] in {s.span_id for s in otlp.trace(order_trace_id(order_id))}

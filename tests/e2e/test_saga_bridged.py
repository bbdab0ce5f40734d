"""The bridged payment saga in a real Airflow: RunSagaOperator sends ChargeRequested, defers
while the real charge service answers, and resumes when saga-replies delivered the reply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from include.payments.tables import ChargeRow, OrderRow
from segue.store.engine import session_scope
from tools.services import ServiceProcess, start_services

pytestmark = pytest.mark.e2e
DAG_ID = "payment_state_machine_bridged"


@pytest.fixture(scope="module")
def bridge_services(
    airflow_stack, pg_url, gateway_process, tmp_path_factory
) -> Iterator[dict[str, ServiceProcess]]:
    with start_services(
        {"charge": "include.services.charge", "saga-replies": "include.services.saga_replies"},
        database_url=pg_url,
        amqp_url=airflow_stack.extra_env["SEGUE_AMQP_URL"],
        gateway_url=gateway_process.url,
        log_dir=tmp_path_factory.mktemp("services"),
    ) as services:
        yield services


@pytest.fixture(scope="module")
def api(airflow_api):
    airflow_api.wait_for_dag(DAG_ID)
    return airflow_api


def charges_and_status(engine, order_id: str) -> tuple[int, str | None]:
    with session_scope(engine) as session:
        count = session.scalar(
            select(func.count()).select_from(ChargeRow).where(ChargeRow.order_id == order_id)
        )
        order = session.get(OrderRow, order_id)
        return int(count or 0), order.status if order else None


def test_the_bridged_saga_defers_on_the_charge_reply_and_succeeds(
    api, bridge_services, engine, gateway_url, order_data
):
    conf = order_data()
    run_id = api.trigger_dag_run(DAG_ID, conf)
    run = api.wait_for_run(DAG_ID, run_id, timeout=240)
    states = api.task_states(DAG_ID, run_id)
    assert run["state"] == "success", states
    log = api.task_logs(DAG_ID, run_id, "run_saga")
    assert "AWAITING_CHARGE" in log and "deferring" in log
    assert charges_and_status(engine, conf["order_id"]) == (1, "completed")


def test_a_declined_card_fails_the_run_and_compensates(
    api, bridge_services, engine, gateway_url, order_data
):
    conf = order_data(payment_method="pm_card_chargeDeclined")
    run_id = api.trigger_dag_run(DAG_ID, conf)
    run = api.wait_for_run(DAG_ID, run_id, timeout=240)
    assert run["state"] == "failed"
    assert "compensated" in api.task_logs(DAG_ID, run_id, "run_saga")
    assert charges_and_status(engine, conf["order_id"]) == (0, "failed")

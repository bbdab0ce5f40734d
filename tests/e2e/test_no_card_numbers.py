"""Issue 9 through a real Airflow: card numbers stay at the gateway.

One ``payment_pipeline`` run and one ``payment_state_machine`` run place orders by token; then
Airflow's metadata database (every table: DAG run conf, XCom, rendered fields, audit log, ...),
the same runs' conf, XCom and task logs through the REST API v2, the log files of the stack and
the gateway, and every table of the business database are scanned for test card numbers
(``tests/pci_scan.py``). A card number typed into the form's token field fails the first task
with a message naming the field, and is stored and logged nowhere of ours.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from include.payments.tables import OrderRow
from segue.store.dead_letters import DeadLetter
from segue.store.engine import session_scope
from tests.pci_scan import (
    Finding,
    assert_no_card_numbers,
    find_card_numbers,
    scan_database,
    scan_files,
    scan_text,
)

pytestmark = pytest.mark.e2e
NEVER_RAN = (None, "upstream_failed", "skipped", "removed")
RUNS = {"payment_pipeline": "validate", "payment_state_machine": "prepare_order"}


def rest_findings(api, dag_id: str, run_id: str) -> list[Finding]:
    """The run's conf, every task's XComs and every task's logs, as the REST API v2 shows them."""
    where = f"{dag_id}/{run_id}"
    findings = scan_text(f"REST conf of {where}", str(api.dag_run(dag_id, run_id)["conf"]))
    for task_id, state in api.task_states(dag_id, run_id).items():
        if state in NEVER_RAN:
            continue  # no try: no XCom, no log
        base = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        for entry in api.get(f"{base}/xcomEntries")["xcom_entries"]:
            value = api.get(f"{base}/xcomEntries/{entry['key']}")["value"]
            findings += scan_text(f"REST XCom {where}/{task_id}/{entry['key']}", str(value))
        findings += scan_text(f"REST log {where}/{task_id}", api.task_logs(dag_id, run_id, task_id))
    return findings


def metadata_findings(airflow_stack) -> list[Finding]:
    metadata = create_engine(airflow_stack.metadata_url)
    try:
        return scan_database(metadata)
    finally:
        metadata.dispose()


def test_orders_through_airflow_leave_no_card_number_anywhere(
    airflow_api, airflow_stack, engine, gateway_process, gateway_url, order_data
):
    runs = []
    for dag_id in RUNS:
        conf = order_data()
        run_id = airflow_api.trigger_dag_run(dag_id, conf)
        run = airflow_api.wait_for_run(dag_id, run_id, timeout=240)
        assert run["state"] == "success", airflow_api.task_states(dag_id, run_id)
        runs.append((dag_id, run_id, conf["order_id"]))
    with session_scope(engine) as session:
        for _, _, order_id in runs:
            order = session.get(OrderRow, order_id)
            assert order.status == "completed"
            assert (order.payload["payment_method"], order.payload["card_last4"]) == (
                "pm_card_visa",
                "4242",
            )

    findings = metadata_findings(airflow_stack) + scan_database(engine)
    for dag_id, run_id, _ in runs:
        findings += rest_findings(airflow_api, dag_id, run_id)
    findings += scan_files([airflow_stack.home / "logs", gateway_process.log_path])
    assert_no_card_numbers(findings, scanned="Airflow, the business database and the logs")


@pytest.mark.parametrize("dag_id", list(RUNS))
def test_a_card_number_in_the_token_field_fails_the_first_task_and_goes_nowhere(
    airflow_api, airflow_stack, engine, gateway_url, order_data, dag_id
):
    conf = order_data(payment_method="4242 4242 4242 4242")
    run_id = airflow_api.trigger_dag_run(dag_id, conf)
    run = airflow_api.wait_for_run(dag_id, run_id, timeout=240)
    first = RUNS[dag_id]
    states = airflow_api.task_states(dag_id, run_id)
    assert run["state"] == "failed" and states[first] == "failed", states
    ti = airflow_api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{first}")
    assert ti["try_number"] == 1, "a refused card number is not retried"
    log = airflow_api.task_logs(dag_id, run_id, first)
    assert "payment_method" in log and "card number was entered where a payment method" in log
    with session_scope(engine) as session:
        assert session.get(OrderRow, conf["order_id"]) is None
        letters = session.scalars(
            select(DeadLetter).where(DeadLetter.subject == conf["order_id"])
        ).all()
    if dag_id == "payment_pipeline":
        assert [letter.payload["payment_method"] for letter in letters] == ["************4242"]

    # Nothing of ours holds it: XCom, task logs, log files, the business database. Airflow
    # itself keeps the run's conf as it was typed (the trigger stores it before any task runs),
    # and copies it into the DAG failure callback's request (``callback.data``) until the
    # dag-processor has run the callback (a CI run scanned before it had).
    findings = [f for f in rest_findings(airflow_api, dag_id, run_id) if "conf" not in f.where]
    findings += scan_files([airflow_stack.home / "logs"]) + scan_database(engine)
    assert_no_card_numbers(findings, scanned="XCom, the task logs and the business database")
    kept = {f.where for f in metadata_findings(airflow_stack)}
    assert kept <= {
        "table public.dag_run, column conf",
        "table public.log, column extra",
        "table public.callback, column data",
    }, kept
    assert find_card_numbers(str(airflow_api.dag_run(dag_id, run_id)["conf"])) == ["4242"]

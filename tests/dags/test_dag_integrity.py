"""Every DAG file imports cleanly and every DAG carries tags, an owner, docs and retries ≥ 2."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_file_imports_without_errors(dagbag, path):
    assert str(path) not in dagbag.import_errors, dagbag.import_errors.get(str(path))
    assert any(dag.fileloc == str(path) for dag in dagbag.dags.values()), f"no DAG in {path.name}"


def test_there_are_dags(dagbag):
    assert {"payment_pipeline", "payment_state_machine"} <= set(dagbag.dags)


def test_dag_conventions(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} needs tags"
        assert dag.doc_md and dag.doc_md.strip(), f"{dag_id} needs doc_md"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} has {task.retries} retries"
            assert task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"


def test_saga_dag_shares_the_pipeline_form(dagbag):
    pipeline_form = dagbag.dags["payment_pipeline"].params.dump()
    assert dagbag.dags["payment_state_machine"].params.dump() == pipeline_form


def test_payment_pipeline_shape(dagbag):
    dag = dagbag.dags["payment_pipeline"]
    order = ["validate", "charge", "update_inventory", "send_receipt", "notify_shipping"]
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for task in dag.tasks:
        assert task.retry_exponential_backoff
        assert task.max_retry_delay is not None
    params = dag.params.dump()
    assert params["payment_method"] == "pm_card_visa"
    assert "card_number" not in params
    assert params["amount"] == "49.99"


def test_every_saga_dag_is_registered_with_its_machine(dagbag):
    """The Sagas pages check access per DAG: a DAG running a machine must be named with it."""
    from segue.airflow.operators.saga import RunSagaOperator
    from segue.airflow.operators.saga_batch import RunSagaBatchOperator
    from segue.statemachine.registry import dag_ids_for

    saga_tasks = [
        (dag_id, task)
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if isinstance(task, RunSagaOperator | RunSagaBatchOperator)
    ]
    assert {dag_id for dag_id, _ in saga_tasks} >= {
        "payment_state_machine",
        "payment_state_machine_batch",
    }
    for dag_id, task in saga_tasks:
        assert dag_id in dag_ids_for(task.machine), (dag_id, task.machine)


def test_payment_reconciliation_is_hourly_with_a_window_form(dagbag):
    dag = dagbag.dags["payment_reconciliation"]
    assert dag.timetable.expression in ("@hourly", "0 * * * *")
    assert dag.max_active_runs == 1
    assert [task.task_id for task in dag.tasks] == ["reconcile"]
    params = dag.params.dump()
    assert params == {"start": None, "end": None}
    assert dag.doc_md.lstrip().startswith("### payment_reconciliation")


def test_payment_rollout_is_a_serial_minutely_controller_that_asks_for_approval(dagbag):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = dagbag.dags["payment_rollout"]
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    assert dag.schedule == "* * * * *"
    assert dag.get_task("ask_approval").upstream_task_ids == {"approvals"}
    assert dag.get_task("approvals").upstream_task_ids == {"evaluate"}
    approval = dagbag.dags["payment_rollout_approval"].get_task("approve_step")
    assert isinstance(approval, ApprovalOperator)
    assert set(approval.template_fields) >= {"rollout_id", "step", "subject", "body"}

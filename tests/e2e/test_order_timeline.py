"""One order's timeline on the DAG path, from a real Airflow: its DAG run and five task tries.

``payment_pipeline`` is triggered once under the run id the front door gives an order
(``order__<id>``); the timeline then reads that run through Airflow's REST API v2 (the CLI's
reader, ``tools.timeline_cli.AirflowReader``) and, through the plugin's JSON route, from
Airflow's metadata inside the api-server. Both must list every task's try with its state and
duration, next to the order's own rows.
"""

from __future__ import annotations

import httpx
import pytest

from include.payments.routing import dag_run_id_for
from include.payments.timeline import timeline_sources
from segue.airflow.timeline import airflow_source, rest_run_reader
from segue.timeline.merge import build_timeline
from tools.airflow_api import AirflowApi
from tools.airflow_stack import AirflowStack
from tools.timeline_cli import AirflowReader

pytestmark = pytest.mark.e2e
DAG_ID = "payment_pipeline"
STEPS = ["validate", "charge", "update_inventory", "send_receipt", "notify_shipping"]


def task_tries(entries: list[dict]) -> dict[str, tuple[str | None, int, bool]]:
    return {
        e["details"]["task_id"]: (e["state"], e["details"]["try_number"], e["duration_seconds"] > 0)
        for e in entries
        if e["source"] == "airflow" and e["kind"] == "task try"
    }


def test_a_dag_path_orders_timeline_lists_its_run_and_every_task_try(
    airflow_stack: AirflowStack, airflow_api: AirflowApi, engine, order_data
) -> None:
    conf = order_data()
    order_id = str(conf["order_id"])
    run_id = airflow_api.trigger_dag_run(DAG_ID, conf, run_id=dag_run_id_for(order_id))
    assert airflow_api.wait_for_run(DAG_ID, run_id, timeout=35)["state"] == "success"

    # Over REST v2, as `segue orders timeline` reads it.
    workflow = timeline_sources(engine)
    reader = AirflowReader(airflow_stack.url, "admin", airflow_stack.admin_password(), 10.0)
    try:
        source = airflow_source(workflow.dag_runs, rest_run_reader(reader.get_json))
        timeline = build_timeline(order_id, [*workflow.sources, source])
    finally:
        reader.close()
    assert timeline.missing == ()
    entries = [t.entry.model_dump(mode="json") for t in timeline.entries]
    assert task_tries(entries) == dict.fromkeys(STEPS, ("success", 1, True))
    [run] = [e for e in entries if e["kind"] == "dag run"]
    assert (run["state"], run["details"]["run_id"]) == ("success", run_id)
    assert [e["details"]["task_id"] for e in entries if e["kind"] == "task try"] == STEPS
    assert any(e["kind"] == "outcome" and e["state"] == "completed" for e in entries)

    # The plugin's JSON route, reading Airflow's metadata inside the api-server.
    token = airflow_api.token()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{airflow_stack.url}/segue/api/orders/{order_id}/timeline"
    answer = httpx.get(url, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["missing"] == []
    assert task_tries(data["entries"]) == dict.fromkeys(STEPS, ("success", 1, True))
    assert [(s["name"], s["state"], s["current"]) for s in data["steps"]] == [
        (task, "success", task == STEPS[-1]) for task in STEPS
    ]
    page = httpx.get(url.replace("/api/orders/", "/orders/").removesuffix("/timeline"),
                     headers=headers, timeout=30)  # fmt: skip
    assert page.status_code == 200 and page.text.count('data-kind="task try"') == len(STEPS)
    unknown = httpx.get(url.replace(order_id, "ord-nobody"), headers=headers, timeout=30)
    assert unknown.status_code == 404

"""Orders' timelines on the DAG path, from a real Airflow: the DAG run and its five task tries.

``payment_pipeline`` is triggered twice at once: under the run id the front door gives an order
(``order__<id>``), and as a person would from the UI's form (a run id of Airflow's choosing,
the order id only in the conf). Each order's timeline then reads its run through Airflow's
REST API v2 (the CLI's reader, ``tools.timeline_cli.AirflowReader``) and, through the plugin's
JSON route and page, from Airflow's metadata inside the api-server. Every task's try must be
listed with its state and duration, next to the order's own rows, and the path's steps.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from include.payments.routing import dag_run_id_for
from include.payments.timeline import timeline_sources
from segue.airflow.timeline import airflow_source
from segue.airflow.timeline_readers import rest_run_reader
from segue.timeline.merge import build_timeline
from tools.airflow_api import AirflowApi
from tools.airflow_stack import AirflowStack
from tools.timeline_cli import AirflowReader

pytestmark = pytest.mark.e2e
DAG_ID = "payment_pipeline"
STEPS = ["validate", "charge", "update_inventory", "send_receipt", "notify_shipping"]
EVERY_TASK_ONCE = dict.fromkeys(STEPS, ("success", 1, True))


def task_tries(entries: list[dict[str, Any]]) -> dict[str, tuple[str | None, int, bool]]:
    return {
        e["details"]["task_id"]: (e["state"], e["details"]["try_number"], e["duration_seconds"] > 0)
        for e in entries
        if e["source"] == "airflow" and e["kind"] == "task try"
    }


def over_rest(stack: AirflowStack, engine, order_id: str) -> list[dict[str, Any]]:
    """The order's timeline as `segue orders timeline` reads it (REST v2), as JSON entries."""
    workflow = timeline_sources(engine)
    reader = AirflowReader(stack.url, "admin", stack.admin_password(), 10.0)
    try:
        source = airflow_source(workflow.dag_runs, rest_run_reader(reader.get_json))
        timeline = build_timeline(order_id, [*workflow.sources, source])
    finally:
        reader.close()
    assert timeline.missing == ()
    return [t.entry.model_dump(mode="json") for t in timeline.entries]


def test_a_dag_path_orders_timeline_lists_its_run_and_every_task_try(
    airflow_stack: AirflowStack, airflow_api: AirflowApi, engine, order_data
) -> None:
    handed_over, by_hand = order_data(), order_data()
    run_ids = {
        handed_over["order_id"]: airflow_api.trigger_dag_run(
            DAG_ID, handed_over, run_id=dag_run_id_for(str(handed_over["order_id"]))
        ),
        by_hand["order_id"]: airflow_api.trigger_dag_run(DAG_ID, by_hand),  # as from the form
    }
    for run_id in run_ids.values():
        assert airflow_api.wait_for_run(DAG_ID, run_id, timeout=35)["state"] == "success"
    headers = {"Authorization": f"Bearer {airflow_api.token()}"}

    for order_id, run_id in run_ids.items():
        entries = over_rest(airflow_stack, engine, str(order_id))
        assert task_tries(entries) == EVERY_TASK_ONCE, order_id
        [run] = [e for e in entries if e["kind"] == "dag run"]
        assert (run["state"], run["details"]["run_id"]) == ("success", run_id)
        assert [e["details"]["task_id"] for e in entries if e["kind"] == "task try"] == STEPS
        assert any(e["kind"] == "outcome" and e["state"] == "completed" for e in entries)

        # The plugin's JSON route and page, reading Airflow's metadata inside the api-server.
        url = f"{airflow_stack.url}/segue/api/orders/{order_id}/timeline"
        answer = httpx.get(url, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["missing"] == []
        assert task_tries(data["entries"]) == EVERY_TASK_ONCE, order_id
        assert [(s["name"], s["state"], s["current"]) for s in data["steps"]] == [
            (task, "success", task == STEPS[-1]) for task in STEPS
        ]
        page = httpx.get(
            f"{airflow_stack.url}/segue/orders/{order_id}", headers=headers, timeout=30
        )
        assert page.status_code == 200 and page.text.count('data-kind="task try"') == len(STEPS)

    unknown = httpx.get(
        f"{airflow_stack.url}/segue/api/orders/ord-nobody/timeline", headers=headers, timeout=30
    )
    assert unknown.status_code == 404


def test_the_event_path_page_is_served_by_the_real_api_server(
    airflow_stack: AirflowStack, airflow_api: AirflowApi
) -> None:
    """The plugin inside Airflow reads the stack's broker and outbox for the workflow's services."""
    headers = {"Authorization": f"Bearer {airflow_api.token()}"}
    answer = httpx.get(f"{airflow_stack.url}/segue/api/event-path", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    services = [row["service"] for row in data["services"]]
    assert services[:5] == ["validation", "inventory", "charge", "receipt", "shipping"]
    assert not any(part.startswith("broker") for part in data["missing"]), data["missing"]
    page = httpx.get(f"{airflow_stack.url}/segue/event-path", headers=headers, timeout=30)
    assert page.status_code == 200 and page.text.count('<tr class="service') >= 8

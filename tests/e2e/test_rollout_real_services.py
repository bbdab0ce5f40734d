"""A guarded rollout rolls back a candidate whose service stops, with every part a real process.

The event-path services, the event log and the intake run as processes; orders are POSTed to
the intake over HTTP; the rollout is started through the plugin's REST API and evaluated by
``payment_rollout`` runs in the e2e Airflow (triggered through REST v2, one evaluation each).
The candidate is healthy at first; then its shipping service is stopped, so its new orders
never complete: the stuck-orders check fails, and after ``failure_limit`` failing evaluations
the controller pulls the kill switch with the measurement as the reason. New orders then go to
the baseline, and the candidate's orders finish on the event path once shipping is back (an
abort strands no order). DAG-bound orders are not handed to Airflow here: the checks measure
the candidate only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from include.payments.rollout_plan import FLAG, default_plan
from include.payments.tables import OrderRow
from include.services import EVENT_PATH_PROCESSES
from include.services.api_clients import create_client
from segue.rollout import current, history
from segue.rollout.guard import abort, active
from segue.rollout.guard_model import rollouts
from segue.store.engine import session_scope
from tests.conftest import reset_tables
from tests.e2e.test_payment_rollout import DAG_ID, evaluate_once
from tests.e2e.test_split_end_to_end import post_orders, top_up_stock
from tools.ports import unused_port
from tools.services import ServiceProcess, start_services

pytestmark = pytest.mark.e2e
STUCK_AFTER_SECONDS = 10  # far above the event path's p99 on a loaded machine (~1 s)
FAILURE_LIMIT = 2


def stuck_only_plan() -> dict[str, Any]:
    """The payment plan's own stuck-orders check, every second, on a first step that does not
    bake out during the test (so the only way on is back)."""
    data = default_plan().model_dump(mode="json")
    [stuck] = [check for check in data["checks"] if check["name"] == "stuck_orders"]
    stuck.update(min_sample=1, failure_limit=FAILURE_LIMIT)
    data.update(
        name="e2e-real-services",
        interval_seconds=1,
        params={"stuck_after_seconds": STUCK_AFTER_SECONDS},
        steps=[{"weight": 50, "bake_seconds": 3600}, {"weight": 100, "bake_seconds": 3600}],
        checks=[stuck],
    )
    return data


@pytest.fixture
def rollout_store(clean_db: Engine, airflow_api: Any) -> Iterator[Engine]:
    airflow_api.wait_for_dag(DAG_ID)
    yield clean_db
    with Session(clean_db) as session:  # never leave the controller a rollout of `route`
        going = active(session, FLAG.name)
        if going is not None:
            abort(session, going.id, "e2e teardown", "test over")
            session.commit()
    reset_tables(clean_db)  # nor later tests a killed or split flag


@pytest.fixture
def fleet(
    rollout_store: Engine, fresh_amqp_url: str, pg_url: str, gateway_url: str, tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    with start_services(
        EVENT_PATH_PROCESSES,
        database_url=pg_url,
        amqp_url=fresh_amqp_url,
        gateway_url=gateway_url,
        log_dir=tmp_path / "services",
        extra_env={"SEGUE_INTAKE_PORT": str(unused_port())},
    ) as services:
        yield services


def statuses(engine: Engine, order_ids: list[str]) -> dict[str, str | None]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(OrderRow.order_id, OrderRow.status).where(OrderRow.order_id.in_(order_ids))
        ).all()
    found = dict(rows)
    return {order_id: found.get(order_id) for order_id in order_ids}


def wait_for(predicate: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_stopping_the_candidates_service_rolls_the_rollout_back_and_strands_no_order(
    rollout_store: Engine,
    fleet: dict[str, ServiceProcess],
    airflow_stack: Any,
    airflow_api: Any,
    order_data: Any,
) -> None:
    engine = rollout_store
    batch = [order_data(order_id=f"ord-guard-{index:02d}") for index in range(24)]
    top_up_stock(engine, batch[0], len(batch))
    with session_scope(engine) as session:
        api_key = create_client(session, "e2e-guard")
    intake = f"http://127.0.0.1:{fleet['intake'].env['SEGUE_INTAKE_PORT']}"
    started = httpx.post(
        f"{airflow_stack.url}/segue/api/rollout/guarded",
        json={"plan": stuck_only_plan()},
        headers={"Authorization": f"Bearer {airflow_api.token()}"},
        timeout=30,
    )
    assert started.status_code == 201, started.text
    time.sleep(0.3)  # the front door sees the rollout's split (it polls every 0.25 s)

    # Healthy: the candidate's orders complete, an evaluation passes.
    healthy = post_orders(intake, api_key, batch[:12])
    healthy_events = [o for o, path in healthy.items() if path == "events"]
    assert healthy_events, healthy
    wait_for(lambda: set(statuses(engine, healthy_events).values()) == {"completed"}, "healthy")
    evaluate_once(airflow_api)
    with Session(engine) as session:
        [state] = rollouts(session, FLAG.name)
    assert state.state.value == "running" and not state.failures, state.reason

    # Shipping stops: the candidate's new orders get stuck; the controller rolls back.
    fleet["shipping"].stop()
    broke_at = time.monotonic()
    sick = post_orders(intake, api_key, batch[12:])
    sick_events = [o for o, path in sick.items() if path == "events"]
    assert sick_events, sick
    time.sleep(STUCK_AFTER_SECONDS + 1)
    for _ in range(FAILURE_LIMIT + 2):
        evaluate_once(airflow_api)
        with Session(engine) as session:
            [state] = rollouts(session, FLAG.name)
        if state.state.value != "running":
            break
    rolled_back_after = time.monotonic() - broke_at
    assert state.state.value == "aborted", state.reason
    assert state.failures == {"stuck_orders": FAILURE_LIMIT}
    with Session(engine) as session:
        last, in_force = history(session, FLAG)[-1], current(session, FLAG)
    assert in_force.definition.killed
    assert last.changed_by.startswith("airflow:payment_rollout/")
    assert "stuck_orders: candidate" in last.reason and "failed 2 of limit 2" in last.reason
    print(f"\nrolled back {rolled_back_after:.1f}s after shipping stopped "
          f"(stuck after {STUCK_AFTER_SECONDS}s, {FAILURE_LIMIT} failing evaluations)")  # fmt: skip

    # New orders go to the baseline; the candidate's stuck orders finish where they started.
    time.sleep(0.3)
    after = post_orders(intake, api_key, [order_data(order_id="ord-guard-after")])
    assert after == {"ord-guard-after": "dag"}
    fleet["shipping"].start()
    fleet["shipping"].wait_ready()
    wait_for(lambda: set(statuses(engine, sick_events).values()) == {"completed"}, "stranded")
    with httpx.Client(base_url=intake, headers={"Authorization": f"Bearer {api_key}"}) as http:
        assert {http.get(f"/orders/{o}").json()["path"] for o in sick_events} == {"events"}

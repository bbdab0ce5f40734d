"""The batched paths in a real Airflow, fed through the front door (the intake's HTTP app with
``front_door_batch`` on and the real traffic split): one batch holding a good order, a declined
card, an order with no stock and a transient gateway failure (``fail_next``). Effects are
counted in the business tables and in the gateway's own ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments.gateway_client import GatewayClient
from include.payments.routing import BatchOrderRow, OrderRouteRow
from include.payments.settings import PaymentSettings
from include.payments.tables import ChargeRow, OrderRow, RefundRow, ShippingNoticeRow
from include.services.front_door import flag_router
from segue.store.dead_letters import DeadLetter
from segue.store.engine import session_scope
from tests.conftest import DECLINED_TOKEN, intake_api, pin_split

pytestmark = pytest.mark.e2e
TERMINAL = ("completed", "failed", "compensated")


def place_batch(engine, gateway_url: str, order_data: Callable, path: str) -> list[str]:
    """POST a good order, a declined card, an order with no stock and another good one."""
    pin_split(engine, path, reason=f"batched {path} e2e")
    gateway = GatewayClient(gateway_url, timeout_seconds=5)
    settings = PaymentSettings(gateway_url=gateway_url, front_door_batch=True)
    client = intake_api(engine, gateway, settings=settings, route=flag_router())
    orders = [
        order_data(),
        order_data(payment_method=DECLINED_TOKEN),
        order_data(items=[{"sku": "SKU-MUG", "quantity": 1000}]),
        order_data(),
    ]
    for order in orders:
        response = client.post("/orders", json=order)
        assert response.status_code in (200, 201, 202), response.text
        assert response.json()["path"] == path
    gateway.close()
    engine.dispose()
    return [str(order["order_id"]) for order in orders]


def wait_settled(engine, order_ids: list[str], timeout: float = 300) -> dict[str, BatchOrderRow]:
    """The queue rows once every order is terminal and its row settled."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(engine) as session:
            rows = session.scalars(
                select(BatchOrderRow).where(BatchOrderRow.order_id.in_(order_ids))
            ).all()
            status = dict(
                session.execute(
                    select(OrderRow.order_id, OrderRow.status).where(
                        OrderRow.order_id.in_(order_ids)
                    )
                ).all()
            )
            settled = {r.order_id: r for r in rows if r.state in ("done", "failed")}
            session.expunge_all()
        if len(settled) == len(order_ids) and all(status.get(o) in TERMINAL for o in order_ids):
            return settled
        if time.monotonic() > deadline:
            pytest.fail(f"not settled in {timeout}s: {[(r.order_id, r.state) for r in rows]}")
        time.sleep(1)


def counts(engine, table, order_ids: list[str]) -> list[int]:
    with session_scope(engine) as session:
        return [
            session.scalar(select(func.count()).select_from(table).where(table.order_id == o))
            for o in order_ids
        ]


def statuses(engine, order_ids: list[str]) -> list[str]:
    with session_scope(engine) as session:
        return [session.get(OrderRow, o).status for o in order_ids]


def test_batched_dag_keeps_per_order_semantics(
    airflow_api, clean_db, gateway_url, gateway_admin, order_data
):
    dag_id = "payment_pipeline_batch"
    airflow_api.wait_for_dag(dag_id)
    gateway_admin.set_faults(fail_next=1)  # one charge of the batch gets a 503
    ids = place_batch(clean_db, gateway_url, order_data, "dag")
    with session_scope(clean_db) as session:
        assert session.get(OrderRouteRow, ids[0]).dag_id == dag_id
    rows = wait_settled(clean_db, ids)

    good, declined, no_stock = [ids[0], ids[3]], ids[1], ids[2]
    assert statuses(clean_db, ids) == ["completed", "failed", "failed", "completed"]
    assert counts(clean_db, ChargeRow, ids) == [1, 0, 1, 1]
    assert counts(clean_db, ShippingNoticeRow, ids) == [1, 0, 0, 1]
    # Out of stock after the charge: refunded (no charge outlives a failed order).
    assert counts(clean_db, RefundRow, ids) == [0, 0, 1, 0]
    with session_scope(clean_db) as session:
        letters = sorted(session.execute(select(DeadLetter.subject, DeadLetter.step)).all())
    assert letters == sorted([(declined, "charge"), (no_stock, "update_inventory")])
    stats = gateway_stats(gateway_url)
    assert stats["charges"]["succeeded"] == 3 and stats["injected_failures"] == 1
    assert stats["refunds"] == 1
    # The transient failure was retried in a later run; every other order took one run.
    runs = {o: rows[o].runs.split() for o in ids}
    assert sorted(len(r) for r in runs.values()) == [1, 1, 1, 2], runs

    # "What happened to order X": the run's last task says it per order, in its log and XCom.
    for order_id in good:
        run_id = runs[order_id][-1]
        run = airflow_api.wait_for_run(dag_id, run_id, timeout=60)
        assert run["state"] == "success"
        xcom = airflow_api.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/notify_shipping"
            "/xcomEntries/return_value"
        )
        value = xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"])
        assert value["orders"][order_id]["outcome"] == "completed"
        log = airflow_api.task_logs(dag_id, run_id, "notify_shipping")
        assert f"/segue/orders/{order_id}" in log
    assert rows[declined].outcome and "decline" in rows[declined].outcome


def test_batched_saga_compensates_only_the_failed_orders(
    airflow_api, clean_db, gateway_url, gateway_admin, order_data
):
    dag_id = "payment_state_machine_batch"
    airflow_api.wait_for_dag(dag_id)
    gateway_admin.set_faults(fail_next=1)  # one charge of the batch gets a 503: saga retries
    ids = place_batch(clean_db, gateway_url, order_data, "saga")
    rows = wait_settled(clean_db, ids)

    declined, no_stock = ids[1], ids[2]
    assert [rows[o].state for o in ids] == ["done", "failed", "failed", "done"]
    assert statuses(clean_db, ids) == ["completed", "failed", "failed", "completed"]
    assert counts(clean_db, ChargeRow, ids) == [1, 0, 1, 1]
    assert counts(clean_db, RefundRow, ids) == [0, 0, 1, 0]  # the saga undoes the no-stock charge
    assert counts(clean_db, ShippingNoticeRow, ids) == [1, 0, 0, 1]
    stats = gateway_stats(gateway_url)
    assert stats["charges"]["succeeded"] == 3 and stats["injected_failures"] == 1
    assert stats["refunds"] == 1
    assert "compensated" in rows[declined].outcome or "failed" in rows[declined].outcome
    assert rows[no_stock].outcome.startswith("saga ")
    # One run took the whole batch (the transient failure was a backoff inside the saga).
    run_ids = {rows[o].runs for o in ids}
    assert len(run_ids) == 1
    run = airflow_api.wait_for_run(dag_id, run_ids.pop(), timeout=60)
    assert run["state"] == "success"

"""Shadow mode with real processes: the intake mirrors over HTTP, its relay publishes the
shadows' OrderPlaced to RabbitMQ, the event-path services run them with effects stubbed.

The real orders go to ``dag``, which no process here runs (no Airflow): they wait, while their
shadows complete or fail on the event path. Then the real ones run through the DAG's steps in
process, and the comparator finds no mismatch. About 20 s, most of it starting the services.
"""

from __future__ import annotations

import time

import httpx
from sqlalchemy import select

from include.gateway.admin import stats as gateway_stats
from include.payments.shadow import ShadowReceiptRow, ShadowShippingNoticeRow, shadow_id
from include.payments.steps import TERMINAL
from include.payments.tables import OrderRow, ReceiptRow, ShippingNoticeRow, StockRow
from include.services.front_door import PAYMENT_FLAG, route_everything_to
from segue.rollout.shadow import set_shadow
from segue.store.engine import session_scope
from tests.conftest import DECLINED_TOKEN, order_of
from tests.faults.conftest import count, run_choreography
from tests.include.services.test_shadow_compare import report_of, run_on_dag


def statuses(engine, order_ids: list[str]) -> dict[str, str]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(OrderRow.order_id, OrderRow.status).where(OrderRow.order_id.in_(order_ids))
        ).all()
    return {order_id: status for order_id, status in rows}


def real_effects(engine, gateway_url: str) -> dict[str, object]:
    with session_scope(engine) as session:
        stock = {row.sku: row.available for row in session.scalars(select(StockRow))}
    live = gateway_stats(gateway_url)
    return {
        "stock": stock,
        "receipts": count(engine, ReceiptRow),
        "shipping_notices": count(engine, ShippingNoticeRow),
        "live_ledger": (live["charges"], live["refunds"], live["requests"]),
    }


def test_shadows_run_through_the_event_path_processes(
    fresh_amqp_url, engine, gateway_url, tmp_path, order_data, deps
):
    with run_choreography(fresh_amqp_url, engine, gateway_url, tmp_path / "services") as running:
        route_everything_to(engine, "dag", actor="tests", reason="the baseline, shadowed")
        with session_scope(engine) as session:
            set_shadow(
                session, PAYMENT_FLAG, path="events", percent=100, actor="t", reason="shadow"
            )
        time.sleep(1.0)  # the intake polls the split and the switch every 0.25 s
        before = real_effects(engine, gateway_url)
        bodies = [order_data() for _ in range(8)] + [order_data(payment_method=DECLINED_TOKEN)]
        ids = [running.place(body) for body in bodies]
        shadows = [shadow_id(order_id) for order_id in ids]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = statuses(engine, shadows)
            if len(done) == len(shadows) and set(done.values()) <= set(TERMINAL):
                break
            time.sleep(0.25)
        assert sorted(done.values()) == ["completed"] * 8 + ["failed"], done
        assert statuses(engine, ids) == {}  # the real orders wait for Airflow
        assert real_effects(engine, gateway_url) == before
        assert count(engine, ShadowReceiptRow) == count(engine, ShadowShippingNoticeRow) == 8
        sandbox = httpx.get(f"{gateway_url}/stats", headers={"Gateway-Mode": "sandbox"}).json()
        assert sandbox["charges"] == {"succeeded": 8, "declined": 1}

    with session_scope(engine) as session:
        orders = {row.order_id: row for row in session.scalars(select(OrderRow))}
    assert set(orders) == set(shadows)
    for body in bodies:
        run_on_dag(deps, order_of(body))
    report = report_of(engine)
    assert (report.mirrored, report.compared, report.mismatches) == (9, 9, ())

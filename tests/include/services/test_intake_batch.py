"""The front door with batching on: a ``dag`` or ``saga`` order is queued for its path's
batched DAG in the accepting transaction (no OrderRouted, no hand-over), keeps that on a
repeat, and its timeline names the batch runs that took it; ``hybrid`` is handed over."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.payments import batch_queue
from include.payments.routing import BATCH_DAG_OF_PATH, BatchOrderRow, route_of
from include.payments.timeline import dag_runs_of
from include.services.intake import place_order
from segue.bus.outbox import OutboxRow
from segue.store.engine import session_scope


def place(engine, order, path, batch=True):
    with session_scope(engine) as session:
        return place_order(session, order, path, client="test-client", batch=batch)


def outbox_count(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(OutboxRow))


@pytest.mark.parametrize("path", ["dag", "saga"])
def test_a_batched_order_waits_in_the_queue_not_the_outbox(clean_db, make_order, path):
    order = make_order()
    envelope = place(clean_db, order, path)
    again = place(clean_db, order, path)
    assert envelope.id == again.id
    assert outbox_count(clean_db) == 0
    with session_scope(clean_db) as session:
        route = route_of(session, order.order_id)
        row = session.get(BatchOrderRow, order.order_id)
        assert (route.path, route.dag_id, route.dag_run_id) == (path, BATCH_DAG_OF_PATH[path], None)
        assert (row.dag_id, row.state, row.next_step) == (
            BATCH_DAG_OF_PATH[path],
            "queued",
            "validate",
        )
        assert row.payload["payment_method"] == order.payment_method
        assert "card_number" not in row.payload
    assert batch_queue.ready(clean_db, BATCH_DAG_OF_PATH[path])[0] == 1


def test_hybrid_and_unbatched_orders_are_handed_over_one_run_each(clean_db, make_order):
    place(clean_db, make_order(), "hybrid")
    place(clean_db, make_order(), "dag", batch=False)
    assert outbox_count(clean_db) == 2
    with session_scope(clean_db) as session:
        assert session.scalar(select(func.count()).select_from(BatchOrderRow)) == 0


def test_the_timeline_names_each_batch_run_that_took_the_order(clean_db, make_order):
    order = make_order()
    place(clean_db, order, "dag")
    dag_id = BATCH_DAG_OF_PATH["dag"]
    assert dag_runs_of(clean_db, order.order_id) == []
    batch_queue.claim(clean_db, dag_id, "run-1", 10, 600)
    with session_scope(clean_db) as session:
        batch_queue.release(session, order.order_id, "run-1", "charge", 1, 0)
    batch_queue.claim(clean_db, dag_id, "run-2", 10, 600)
    refs = dag_runs_of(clean_db, order.order_id)
    assert [(r.dag_id, r.run_id) for r in refs] == [(dag_id, "run-1"), (dag_id, "run-2")]


def test_get_order_names_the_batch_run_once_one_took_it(clean_db, order_data, gateway_url):
    from include.payments.gateway_client import GatewayClient
    from include.payments.settings import PaymentSettings
    from include.services.front_door import flag_router
    from tests.conftest import intake_api

    gateway = GatewayClient(gateway_url, timeout_seconds=5)
    settings = PaymentSettings(gateway_url=gateway_url, front_door_batch=True)
    client = intake_api(clean_db, gateway, settings=settings, route=flag_router())
    data = order_data()
    assert client.post("/orders", json=data).json()["path"] == "dag"  # the default split
    status = client.get(f"/orders/{data['order_id']}").json()
    assert (status["dag_id"], status["dag_run_id"]) == ("payment_pipeline_batch", None)
    batch_queue.claim(clean_db, "payment_pipeline_batch", "run-9", 10, 600)
    assert client.get(f"/orders/{data['order_id']}").json()["dag_run_id"] == "run-9"
    gateway.close()

"""The front door's routing: an order takes the event path or hands over to one Airflow DAG,
its path is kept with the placement, and placing it again changes neither path nor outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.payments.events import PAYMENT_EVENTS, OrderPlaced, OrderRouted
from include.payments.routing import DAG_OF_PATH, UnknownPath, dag_run_id_for
from include.services.intake import order_routed_id, path_of, place_order
from segue.bus.outbox import OutboxRow
from segue.events.amqp import from_amqp
from segue.store.engine import session_scope
from tests.conftest import intake_api


def place(engine, order, path="events"):
    with session_scope(engine) as session:
        return place_order(session, order, path, client="test-client")


def queued(engine) -> list:
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        return [
            from_amqp(row.body, row.headers, row.properties["content_type"], PAYMENT_EVENTS)
            for row in rows
        ]


def test_the_default_path_is_the_choreography_as_before(clean_db, make_order, bus):
    order = make_order()
    envelope = place(clean_db, order)
    assert envelope.type == OrderPlaced.event_type
    assert [e.type for e in queued(clean_db)] == [OrderPlaced.event_type]
    assert "airflow-handover" not in bus.subscribers(OrderPlaced.event_type)
    with session_scope(clean_db) as session:
        assert path_of(session, order.order_id) == "events"


@pytest.mark.parametrize("path", sorted(DAG_OF_PATH))
def test_a_dag_path_queues_order_routed_to_its_dag_with_one_run_id(clean_db, make_order, bus, path):
    order = make_order()
    envelope = place(clean_db, order, path)
    [event] = queued(clean_db)
    assert event.id == envelope.id == order_routed_id(order.order_id)
    assert event.data == OrderRouted(
        order=order,
        path=path,
        dag_id=DAG_OF_PATH[path],
        dag_run_id=dag_run_id_for(order.order_id),
    )
    assert bus.subscribers(OrderRouted.event_type) == []  # no choreography service reacts


def test_the_same_order_placed_again_keeps_its_first_path_and_hands_over_once(clean_db, make_order):
    order = make_order()
    first = place(clean_db, order, "dag")
    again = place(clean_db, order, "events")  # the router changed its mind: too late
    third = place(clean_db, order, "saga")
    assert first.id == again.id == third.id
    assert {e.data.dag_id for e in (first, again, third)} == {"payment_pipeline"}
    assert len(queued(clean_db)) == 1
    with session_scope(clean_db) as session:
        assert path_of(session, order.order_id) == "dag"


def test_an_unknown_path_is_refused_and_leaves_nothing(clean_db, make_order):
    order = make_order()
    with pytest.raises(UnknownPath, match="path: 'airflow' is not one of"):
        place(clean_db, order, "airflow")
    assert queued(clean_db) == []
    place(clean_db, order, "dag")  # the order id is still free
    assert len(queued(clean_db)) == 1


@pytest.fixture
def api(gateway):
    """The intake app over a store, with an API key of its own and the test gateway."""
    return lambda engine, **options: intake_api(engine, gateway, **options)


def test_post_orders_routes_with_the_seam_and_get_reports_the_path(clean_db, order_data, api):
    chosen = {"path": "saga"}
    client = api(clean_db, route=lambda session, order: chosen["path"])
    order = order_data()
    response = client.post("/orders", json=order)
    assert response.status_code == 202, response.text
    assert response.json()["path"] == "saga"
    chosen["path"] = "events"
    again = client.post("/orders", json=order)
    assert again.status_code == 202 and again.json()["path"] == "saga"
    got = client.get(f"/orders/{order['order_id']}").json()
    assert got == {
        "order_id": order["order_id"],
        "path": "saga",
        "dag_id": "payment_state_machine",
        "dag_run_id": dag_run_id_for(str(order["order_id"])),
        "status": "accepted",  # no DAG task has recorded it yet
        "failure_reason": None,
        "terminal": False,
    }
    with session_scope(clean_db) as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 1


def test_post_orders_defaults_to_the_event_path(clean_db, order_data, api):
    client = api(clean_db)
    order = order_data()
    assert client.post("/orders", json=order).json()["path"] == "events"
    assert client.get(f"/orders/{order['order_id']}").json()["path"] == "events"
    assert client.get("/orders/never-placed").status_code == 404


def test_a_router_answering_nonsense_is_a_server_error_and_writes_nothing(
    clean_db, order_data, api
):
    client = api(clean_db, route=lambda session, order: "nowhere")
    response = client.post("/orders", json=order_data())
    assert response.status_code == 500
    assert "path: 'nowhere'" in response.json()["detail"]
    assert queued(clean_db) == []

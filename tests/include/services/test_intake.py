"""Order intake: one OrderPlaced per order id in the outbox, another order under it rejected."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from include.payments.errors import InvalidOrder
from include.payments.events import PAYMENT_EVENTS, OrderPlaced
from include.payments.tables import OrderPlacementRow
from include.services.intake import order_placed_id, place_order
from segue.bus.outbox import OutboxRow
from segue.events.amqp import from_amqp
from segue.store.engine import session_scope


def place(engine, order):
    with session_scope(engine) as session:
        return place_order(session, order, client="test-client")


def outbox_rows(engine) -> list[OutboxRow]:
    with session_scope(engine) as session:
        return list(session.query(OutboxRow))


def test_place_order_queues_one_order_placed(clean_db, make_order):
    order = make_order()
    envelope = place(clean_db, order)
    assert envelope.id == order_placed_id(order.order_id)
    assert (envelope.type, envelope.subject, envelope.source) == (
        OrderPlaced.event_type,
        order.order_id,
        "intake",
    )
    [row] = outbox_rows(clean_db)
    assert row.event_id == envelope.id
    decoded = from_amqp(row.body, row.headers, row.properties["content_type"], PAYMENT_EVENTS)
    assert decoded.data == OrderPlaced(order=order)


def test_placing_the_same_order_twice_is_absorbed(clean_db, make_order):
    order = make_order()
    first = place(clean_db, order)
    second = place(clean_db, order)
    assert first.id == second.id
    assert len(outbox_rows(clean_db)) == 1


def test_a_rolled_back_placement_leaves_nothing(clean_db, make_order):
    order = make_order()
    with pytest.raises(RuntimeError), session_scope(clean_db) as session:
        place_order(session, order, client="test-client")
        raise RuntimeError("the caller's transaction fails")
    assert outbox_rows(clean_db) == []
    place(clean_db, order)
    assert len(outbox_rows(clean_db)) == 1


def test_another_order_under_a_queued_id_is_rejected(clean_db, make_order):
    order = make_order()
    place(clean_db, order)
    with pytest.raises(InvalidOrder) as raised:
        place(clean_db, make_order(order_id=order.order_id, amount="1.00"))
    assert raised.value.field == "order_id"
    assert len(outbox_rows(clean_db)) == 1


def test_another_order_under_a_validated_id_is_rejected(bus, clean_db, make_order):
    order = make_order()
    bus.deliver("validation", place(clean_db, order))
    with session_scope(clean_db) as session:  # the relay published and deleted the row
        session.execute(delete(OutboxRow))
    with pytest.raises(InvalidOrder):
        place(clean_db, make_order(order_id=order.order_id, amount="1.00"))
    place(clean_db, order)  # the same order again: absorbed, nothing queued
    assert outbox_rows(clean_db) == []


def test_another_order_under_a_published_but_not_yet_validated_id_is_rejected(clean_db, make_order):
    """The relay has published and deleted the outbox row; validation has not run yet."""
    order = make_order()
    place(clean_db, order)
    with session_scope(clean_db) as session:
        session.execute(delete(OutboxRow))
    with pytest.raises(InvalidOrder):
        place(clean_db, make_order(order_id=order.order_id, amount="1.00"))
    place(clean_db, order)  # the same order again: absorbed, nothing queued
    assert outbox_rows(clean_db) == []


def test_the_placement_records_its_client(clean_db, make_order):
    order = make_order()
    place(clean_db, order)
    with session_scope(clean_db) as session:
        assert session.get(OrderPlacementRow, order.order_id).client == "test-client"

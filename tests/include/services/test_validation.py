"""The validation service: valid orders are recorded and announced, invalid ones failed."""

from __future__ import annotations

from decimal import Decimal

from include.payments.events import OrderInvalidated, OrderValidated
from include.payments.tables import OrderRow


def test_valid_order_is_recorded_and_validated(bus, store, make_order, order_placed):
    order = make_order()
    [event] = bus.deliver("validation", order_placed(order))
    assert isinstance(event.data, OrderValidated)
    assert event.data.amount == Decimal("49.99")
    assert event.data.items == order.items
    assert event.subject == order.order_id
    assert event.source == "validation"
    assert store.order(order.order_id).status == "validated"


def test_unknown_sku_fails_the_order(bus, store, make_order, order_placed):
    order = make_order(items=[{"sku": "SKU-NOPE", "quantity": 1}])
    [event] = bus.deliver("validation", order_placed(order))
    assert event.data == OrderInvalidated(
        order_id=order.order_id, field="items.0.sku", reason="unknown sku 'SKU-NOPE'"
    )
    row = store.order(order.order_id)
    assert row.status == "failed"
    assert "SKU-NOPE" in row.failure_reason


def test_reused_order_id_leaves_the_first_order_alone(bus, store, make_order, order_placed):
    first = make_order()
    bus.deliver("validation", order_placed(first))
    other = make_order(order_id=first.order_id, amount="1.00")
    [event] = bus.deliver("validation", order_placed(other))
    assert isinstance(event.data, OrderInvalidated)
    assert event.data.field == "order_id"
    row = store.order(first.order_id)
    assert (row.status, row.amount) == ("validated", Decimal("49.99"))


def test_same_event_twice_records_one_order_and_emits_the_same_event(
    bus, store, make_order, order_placed
):
    envelope = order_placed(make_order())
    [first] = bus.deliver("validation", envelope)
    [second] = bus.deliver("validation", envelope)
    assert first.id == second.id
    assert first.data == second.data
    assert first.causationid == envelope.id
    assert first.correlationid == envelope.correlationid
    assert store.count(OrderRow) == 1

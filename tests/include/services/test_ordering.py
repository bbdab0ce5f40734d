"""Events out of order, the orchestrator's ChargeRequested, and the order row lock."""

from __future__ import annotations

import threading

import pytest

from include.payments import steps
from include.payments.events import (
    ChargeCompleted,
    ChargeFailed,
    ChargeRequested,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryReserved,
    InventoryUpdated,
    OrderPlaced,
)
from include.payments.tables import ChargeRow, ReservationRow
from segue.bus.handlers import HandlerContext, NotYet
from segue.events.envelope import Envelope
from segue.store.engine import session_scope
from tests.conftest import order_of

DECLINED_TOKEN = "pm_card_chargeDeclined"


def test_charge_completed_before_the_reservation_is_retried_later(
    bus, store, make_order, order_placed
):
    [validated] = bus.deliver("validation", order_placed(make_order()))
    [completed] = bus.deliver("charge", validated)
    with pytest.raises(NotYet):
        bus.deliver("inventory", completed)
    assert store.count(ReservationRow) == 0

    bus.deliver("inventory", validated)
    [updated] = bus.deliver("inventory", completed)  # the runtime's later retry
    assert isinstance(updated.data, InventoryUpdated)
    assert store.count(ReservationRow, status="committed") == 2


def test_charge_failed_before_order_validated_reserves_nothing_later(
    bus, store, make_order, order_placed
):
    order = make_order(payment_method=DECLINED_TOKEN)
    [validated] = bus.deliver("validation", order_placed(order))
    [failed] = bus.deliver("charge", validated)
    [released] = bus.deliver("inventory", failed)
    assert released.data == InventoryReleased(order_id=order.order_id, released_lines=0)

    assert bus.deliver("inventory", validated) == []
    assert store.count(ReservationRow) == 0
    assert (store.stock("SKU-MUG"), store.stock("SKU-TEE")) == (100, 100)


def test_inventory_fails_the_order_itself_on_charge_failed(bus, store, make_order, order_placed):
    """Even if the charge service had not failed the order, a later reservation is refused."""
    order = make_order()
    [validated] = bus.deliver("validation", order_placed(order))
    failed = Envelope.create(
        ChargeFailed(order_id=order.order_id, code="gateway_rejected", reason="bad request"),
        source="charge",
        subject=order.order_id,
    )
    bus.deliver("inventory", failed)
    assert store.order(order.order_id).status == "failed"
    assert bus.deliver("inventory", validated) == []


def charge_requested(order_id: str) -> Envelope:
    return Envelope.create(ChargeRequested(order_id=order_id), source="airflow", subject=order_id)


def test_charge_requested_answers_and_inventory_ignores_the_answer(
    bus, store, clean_db, order_data
):
    with session_scope(clean_db) as session:  # the DAG validated the order itself
        order = steps.validate_order(session, order_of(order_data()))
    [completed] = bus.deliver("charge", charge_requested(order.order_id))
    assert isinstance(completed.data, ChargeCompleted)
    assert completed.data.requested_by == "charge_requested"
    assert bus.deliver("inventory", completed) == []  # no NotYet either
    assert store.count(ReservationRow) == 0
    assert store.order(order.order_id).status == "charged"


def test_declined_charge_request_is_a_reply_only(bus, store, clean_db, order_data):
    with session_scope(clean_db) as session:
        order = steps.validate_order(session, order_of(order_data(payment_method=DECLINED_TOKEN)))
    [failed] = bus.deliver("charge", charge_requested(order.order_id))
    assert (failed.data.code, failed.data.requested_by) == ("generic_decline", "charge_requested")
    assert store.order(order.order_id).status == "validated"  # the orchestrator decides
    assert bus.deliver("inventory", failed) == []
    assert store.order(order.order_id).status == "validated"


def test_charge_request_for_an_unknown_order_gets_a_typed_reply(bus, store):
    [failed] = bus.deliver("charge", charge_requested("ord-missing"))
    assert (failed.data.code, failed.data.requested_by) == ("order_not_found", "charge_requested")
    assert store.count(ChargeRow) == 0


def test_charge_waits_for_inventory_holding_the_order_lock(
    bus, services, store, make_order, order_placed, gateway_url
):
    """Inventory fails the order while charge waits on the row lock: charge then does nothing."""
    order = make_order(items=[{"sku": "SKU-MUG", "quantity": 101}])
    [validated] = bus.deliver("validation", order_placed(order))
    inventory = services["inventory"]
    outcome: dict[str, object] = {}

    with session_scope(bus.engine) as session:
        ctx = HandlerContext("inventory", validated, session)
        inventory.handler_for(validated.type)(ctx, validated.data)
        assert isinstance(ctx.emitted[0].data, InventoryReservationFailed)

        def charge() -> None:
            outcome["emitted"] = bus.deliver("charge", validated)

        thread = threading.Thread(target=charge)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "charge should wait for inventory's transaction"
    thread.join(timeout=10.0)

    assert outcome["emitted"] == []
    assert store.count(ChargeRow) == 0


def test_events_of_one_order_in_one_batch_transaction(bus, services, store, make_order):
    """The runtime handles a batch in one transaction, one savepoint per message."""
    order = make_order(items=[{"sku": "SKU-MUG", "quantity": 1}])
    [validated] = bus.deliver("validation", placed_envelope(order))
    [completed] = bus.deliver("charge", validated)
    inventory = services["inventory"]
    emitted = []
    with session_scope(bus.engine) as session:
        for envelope in (validated, completed):
            with session.begin_nested():
                ctx = HandlerContext("inventory", envelope, session)
                inventory.handler_for(envelope.type)(ctx, envelope.data)
                emitted.extend(ctx.emitted)
    assert [type(event.data) for event in emitted] == [InventoryReserved, InventoryUpdated]
    assert store.count(ReservationRow, status="committed") == 1
    assert store.stock("SKU-MUG") == 99


def placed_envelope(order):
    return Envelope.create(OrderPlaced(order=order), source="test", subject=order.order_id)

"""The choreography end to end through the handlers: success and each compensation.

Events are fed from service to service by the test bus; effects are counted in the business
tables and in the gateway's own ledger.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from include.gateway.admin import stats as gateway_stats
from include.payments.errors import GatewayUnavailable
from include.payments.events import (
    ChargeCompleted,
    ChargeFailed,
    InventoryReleased,
    InventoryReservationFailed,
    InventoryUpdated,
    ReceiptSent,
    RefundIssued,
    ShippingNotified,
)
from include.payments.tables import (
    ChargeRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
)

DECLINED_TOKEN = "pm_card_chargeDeclined"


def only(events, model):
    [found] = [event.data for event in events if isinstance(event.data, model)]
    return found


def test_happy_path_runs_through_every_service(
    bus, store, make_order, order_placed, gateway_url, names
):
    order = make_order()
    placed = order_placed(order)
    events = bus.run(placed)

    assert sorted(names(events)) == sorted(
        [
            "OrderValidated",
            "InventoryReserved",
            "ChargeCompleted",
            "InventoryUpdated",
            "ReceiptSent",
            "ShippingNotified",
        ]
    )
    assert {event.correlationid for event in events} == {order.order_id}
    assert only(events, ChargeCompleted).amount == Decimal("49.99")
    assert only(events, InventoryUpdated).lines == order.items
    assert only(events, ReceiptSent).email == "ada@example.com"
    assert only(events, ShippingNotified).country == "GB"

    assert store.order(order.order_id).status == "completed"
    assert store.count(ChargeRow) == 1
    assert store.count(ReservationRow, status="committed") == 2
    assert (store.stock("SKU-MUG"), store.stock("SKU-TEE")) == (98, 99)
    assert store.count(ReceiptRow) == store.count(ShippingNoticeRow) == 1
    assert store.count(RefundRow) == 0
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


@pytest.mark.parametrize("first", ["inventory", "charge"])
def test_declined_card_fails_the_order_and_releases_the_stock(
    bus, store, make_order, order_placed, gateway_url, names, first
):
    order = make_order(payment_method=DECLINED_TOKEN)
    second = "charge" if first == "inventory" else "inventory"
    events = bus.run(order_placed(order), order=["validation", first, second])

    failed = only(events, ChargeFailed)
    assert (failed.code, failed.requested_by) == ("generic_decline", "order_validated")
    released = only(events, InventoryReleased)
    # Reserved first: both lines go back. Charged first: the failed order reserves nothing.
    assert released.released_lines == (2 if first == "inventory" else 0)
    assert "InventoryUpdated" not in names(events)
    row = store.order(order.order_id)
    assert row.status == "failed"
    assert "generic_decline" in row.failure_reason
    assert store.count(ReservationRow, status="reserved") == 0
    assert (store.stock("SKU-MUG"), store.stock("SKU-TEE")) == (100, 100)
    assert store.count(ChargeRow) == 0
    assert gateway_stats(gateway_url)["charges"] == {"succeeded": 0, "declined": 1}


def test_out_of_stock_after_the_charge_refunds_it(
    bus, store, make_order, order_placed, gateway_url, names
):
    order = make_order(items=[{"sku": "SKU-MUG", "quantity": 101}])
    events = bus.run(order_placed(order), order=["validation", "charge", "inventory"])

    assert names(events) == [
        "OrderValidated",
        "ChargeCompleted",
        "InventoryReservationFailed",
        "RefundIssued",
    ]
    assert only(events, InventoryReservationFailed).model_dump() == {
        "order_id": order.order_id,
        "sku": "SKU-MUG",
        "requested": 101,
        "available": 100,
    }
    refund = only(events, RefundIssued)
    assert refund.amount == Decimal("49.99")
    assert "SKU-MUG" in refund.reason
    assert store.order(order.order_id).status == "failed"
    assert store.count(ChargeRow) == store.count(RefundRow) == 1
    assert store.count(ReservationRow) == 0
    stats = gateway_stats(gateway_url)
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (1, 1)


def test_out_of_stock_before_the_charge_charges_nothing(
    bus, store, make_order, order_placed, gateway_url, names
):
    order = make_order(items=[{"sku": "SKU-MUG", "quantity": 101}])
    events = bus.run(order_placed(order), order=["validation", "inventory", "charge"])

    # Charge sees the failed order: no charge, and nothing to refund.
    assert names(events) == ["OrderValidated", "InventoryReservationFailed"]
    assert store.order(order.order_id).status == "failed"
    assert store.count(ChargeRow) == store.count(RefundRow) == 0
    assert gateway_stats(gateway_url)["requests"] == 0


def test_short_second_line_gives_back_the_first(bus, store, make_order, order_placed):
    order = make_order(
        items=[{"sku": "SKU-MUG", "quantity": 3}, {"sku": "SKU-TEE", "quantity": 500}]
    )
    [validated] = bus.deliver("validation", order_placed(order))
    [failed] = bus.deliver("inventory", validated)
    assert isinstance(failed.data, InventoryReservationFailed)
    assert failed.data.sku == "SKU-TEE"
    assert store.stock("SKU-MUG") == 100
    assert store.count(ReservationRow) == 0
    assert store.order(order.order_id).status == "failed"


def test_gateway_outage_propagates_and_the_retry_charges_once(
    bus, store, make_order, order_placed, gateway_url, gateway_admin
):
    order = make_order()
    [validated] = bus.deliver("validation", order_placed(order))
    gateway_admin.set_faults(fail_next=1)
    with pytest.raises(GatewayUnavailable):
        bus.deliver("charge", validated)
    assert store.count(ChargeRow) == 0
    assert store.order(order.order_id).status == "validated"

    [completed] = bus.deliver("charge", validated)  # the runtime's redelivery
    assert isinstance(completed.data, ChargeCompleted)
    assert store.count(ChargeRow) == 1
    stats = gateway_stats(gateway_url)
    assert (stats["charges"]["succeeded"], stats["injected_failures"]) == (1, 1)


def test_refund_outage_propagates_and_the_retry_refunds_once(
    bus, store, make_order, order_placed, gateway_url, gateway_admin
):
    order = make_order(items=[{"sku": "SKU-MUG", "quantity": 101}])
    [validated] = bus.deliver("validation", order_placed(order))
    bus.deliver("charge", validated)
    [failed] = bus.deliver("inventory", validated)
    gateway_admin.set_faults(fail_next=1)
    with pytest.raises(GatewayUnavailable):
        bus.deliver("charge", failed)
    assert store.count(RefundRow) == 0
    [refunded] = bus.deliver("charge", failed)
    assert isinstance(refunded.data, RefundIssued)
    assert store.count(RefundRow) == 1
    assert gateway_stats(gateway_url)["refunds"] == 1

"""Every handler run twice for the same event, in separate transactions: one effect.

(The inbox will drop duplicates before the handlers; this checks the domain alone holds.) A
redelivery emits the same events with the same ids, except where the first delivery failed the
order: the events of that transaction are already out, and the failed order makes it a no-op.
"""

from __future__ import annotations

from include.gateway.admin import stats as gateway_stats
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
)


def twice(bus, service, envelope):
    first = bus.deliver(service, envelope)
    second = bus.deliver(service, envelope)
    assert [(e.id, e.data) for e in first] == [(e.id, e.data) for e in second]
    return first


def then_nothing(bus, service, envelope):
    """The handler fails the order: a redelivery finds it failed and emits nothing."""
    first = bus.deliver(service, envelope)
    assert bus.deliver(service, envelope) == []
    return first


def test_happy_path_twice_has_one_effect_each(bus, store, make_order, order_placed, gateway_url):
    order = make_order()
    [validated] = twice(bus, "validation", order_placed(order))
    twice(bus, "inventory", validated)
    [completed] = twice(bus, "charge", validated)
    [updated] = twice(bus, "inventory", completed)
    twice(bus, "receipt", updated)
    twice(bus, "shipping", updated)

    assert store.count(OrderRow) == store.count(ChargeRow) == 1
    assert store.count(ReservationRow) == 2
    assert (store.stock("SKU-MUG"), store.stock("SKU-TEE")) == (98, 99)
    assert store.count(ReceiptRow) == store.count(ShippingNoticeRow) == 1
    assert store.order(order.order_id).status == "completed"
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


def test_compensations_twice_have_one_effect_each(
    bus, store, make_order, order_placed, gateway_url
):
    order = make_order(
        payment_method="pm_card_chargeDeclined",
        items=[{"sku": "SKU-MUG", "quantity": 5}],
    )
    [validated] = bus.deliver("validation", order_placed(order))
    twice(bus, "inventory", validated)
    [failed] = then_nothing(bus, "charge", validated)
    [released] = twice(bus, "inventory", failed)
    assert released.data.released_lines == 1
    assert store.stock("SKU-MUG") == 100
    assert store.count(ReservationRow, status="released") == 1

    short = make_order(items=[{"sku": "SKU-TEE", "quantity": 101}])
    [validated] = bus.deliver("validation", order_placed(short))
    twice(bus, "charge", validated)
    [out_of_stock] = then_nothing(bus, "inventory", validated)
    twice(bus, "charge", out_of_stock)
    assert store.count(ChargeRow) == store.count(RefundRow) == 1
    stats = gateway_stats(gateway_url)
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (1, 1)

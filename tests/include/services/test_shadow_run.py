"""Shadow orders through the event path's real handlers: every effect stubbed, the real side
of the store and the gateway's live ledger left exactly as they were."""

from __future__ import annotations

from decimal import Decimal

import httpx

from include.gateway.admin import stats as gateway_stats
from include.payments.events import ChargeCompleted, ChargeFailed, InventoryReservationFailed
from include.payments.shadow import (
    ShadowReceiptRow,
    ShadowShippingNoticeRow,
    is_shadow,
    shadow_id,
    shadow_order,
)
from include.payments.tables import (
    ChargeRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
)

SANDBOX = {"Gateway-Mode": "sandbox"}


def sandbox_stats(gateway_url: str) -> dict[str, object]:
    return httpx.get(f"{gateway_url}/stats", headers=SANDBOX).json()


def real_effects(store, gateway_url: str) -> dict[str, object]:
    """What a real order leaves behind: stock, receipts, notices, reservations, the live ledger."""
    live = gateway_stats(gateway_url)
    return {
        "stock": {sku: store.stock(sku) for sku in ("SKU-MUG", "SKU-TEE")},
        "receipts": store.count(ReceiptRow),
        "shipping_notices": store.count(ShippingNoticeRow),
        "live_charges": live["charges"],
        "live_refunds": live["refunds"],
        "live_requests": live["requests"],
    }


def test_shadow_ids_never_collide_with_real_ones() -> None:
    assert shadow_id("ord-1") == "shadow.ord-1" and is_shadow(shadow_id("ord-1"))
    long = "o" * 64
    assert len(shadow_id(long)) == 64 and is_shadow(shadow_id(long))
    assert shadow_id(long) != shadow_id("o" * 63 + "p")
    assert not is_shadow("ord-1")


def test_a_shadow_completes_with_every_effect_stubbed(
    bus, store, make_order, order_placed, gateway_url
):
    before = real_effects(store, gateway_url)
    shadow = shadow_order(make_order())
    events = bus.run(order_placed(shadow))

    assert store.order(shadow.order_id).status == "completed"
    [charged] = [event.data for event in events if isinstance(event.data, ChargeCompleted)]
    assert charged.gateway_charge_id.startswith("ch_sbx_")
    assert charged.amount == Decimal("49.99")
    assert real_effects(store, gateway_url) == before  # nothing real moved
    assert sandbox_stats(gateway_url)["charges"] == {"succeeded": 1, "declined": 0}
    assert store.count(ShadowReceiptRow, order_id=shadow.order_id) == 1
    assert store.count(ShadowShippingNoticeRow, order_id=shadow.order_id) == 1
    assert store.count(ReservationRow, order_id=shadow.order_id, status="committed") == 2
    assert store.count(ChargeRow, idempotency_key=f"{shadow.order_id}:charge") == 1


def test_a_declined_shadow_fails_like_a_real_one_and_gives_back_nothing_real(
    bus, store, make_order, order_placed, gateway_url
):
    before = real_effects(store, gateway_url)
    shadow = shadow_order(make_order(payment_method="pm_card_chargeDeclined"))
    events = bus.run(order_placed(shadow))
    assert any(isinstance(event.data, ChargeFailed) for event in events)
    row = store.order(shadow.order_id)
    assert row.status == "failed" and "generic_decline" in row.failure_reason
    assert real_effects(store, gateway_url) == before
    assert sandbox_stats(gateway_url)["charges"] == {"succeeded": 0, "declined": 1}


def test_out_of_stock_is_checked_against_real_stock_and_refunded_in_the_sandbox(
    bus, store, make_order, order_placed, gateway_url
):
    shadow = shadow_order(make_order(items=[{"sku": "SKU-MUG", "quantity": 101}]))
    before = real_effects(store, gateway_url)
    events = bus.run(order_placed(shadow))
    assert any(isinstance(event.data, InventoryReservationFailed) for event in events)
    assert store.order(shadow.order_id).status == "failed"
    assert real_effects(store, gateway_url) == before
    sandbox = sandbox_stats(gateway_url)
    charged = sandbox["charges"]["succeeded"]
    assert sandbox["refunds"] == charged == store.count(RefundRow, order_id=shadow.order_id)

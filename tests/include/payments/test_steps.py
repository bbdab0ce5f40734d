"""Each payment step and compensation: success, idempotency (twice → one effect), bad input.

Real PostgreSQL and the real gateway process; effects are counted in the business tables and
in the gateway's own ledger.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline, steps
from include.payments.deps import PaymentDeps
from include.payments.errors import (
    CardDeclined,
    GatewayUnavailable,
    InvalidOrder,
    OrderNotFound,
    OutOfStock,
)
from include.payments.gateway_client import GatewayClient
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
    StockRow,
)
from segue.store.engine import session_scope


def count(engine, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(getattr(table, column) == value)
    with session_scope(engine) as session:
        return session.scalar(query)


def stock(engine, sku: str) -> int:
    with session_scope(engine) as session:
        return session.get(StockRow, sku).available


def order_status(engine, order_id: str) -> str:
    with session_scope(engine) as session:
        return session.get(OrderRow, order_id).status


def placed(deps, order_data, **overrides) -> str:
    return pipeline.validate(deps, order_data(**overrides))


# --- validate ------------------------------------------------------------------------------


def test_validate_records_the_order_once(deps, order_data):
    data = order_data()
    assert pipeline.validate(deps, data) == data["order_id"]
    assert pipeline.validate(deps, data) == data["order_id"]
    assert count(deps.engine, OrderRow) == 1
    assert order_status(deps.engine, data["order_id"]) == "validated"
    with session_scope(deps.engine) as session:
        assert session.get(OrderRow, data["order_id"]).amount == Decimal("49.99")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customer_email": "not-an-email"}, "customer_email"),
        ({"amount": "-5"}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"payment_method": "4242424242424242"}, "payment_method"),
        ({"payment_method": "4242 4242 4242 4242"}, "payment_method"),
        ({"payment_method": "4000-0000-0000-0002"}, "payment_method"),
        ({"card_number": "4242424242424242"}, "card_number"),
        ({"payment_method": "pm_nope"}, "payment_method"),
        ({"payment_method": "tok_visa"}, "payment_method"),
        ({"card_last4": "4242"}, "card_last4"),
        ({"currency": "usd"}, "currency"),
        ({"items": []}, "items"),
        ({"items": [{"sku": "SKU-MUG", "quantity": 0}]}, "items.0.quantity"),
        ({"items": [{"sku": "SKU-NOPE", "quantity": 1}]}, "items.0.sku"),
        ({"shipping_address": {"name": "x"}}, "shipping_address.line1"),
        ({"order_id": "bad id with spaces"}, "order_id"),
        ({"surprise": 1}, "surprise"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_validate_rejects_bad_input_naming_the_field(deps, order_data, overrides, field):
    with pytest.raises(InvalidOrder) as raised:
        pipeline.validate(deps, order_data(**overrides))
    assert raised.value.field == field
    assert field in str(raised.value)
    assert raised.value.__cause__ is None  # pydantic's text would repeat the input
    assert "4242 4242" not in str(raised.value) and "0000000" not in str(raised.value)
    assert "424242" not in str(raised.value) and "0000-0000" not in str(raised.value)
    assert count(deps.engine, OrderRow) == 0


def test_validate_stores_the_token_last4_and_brand_told_by_the_gateway(deps, order_data):
    order_id = pipeline.validate(deps, order_data(payment_method="pm_card_chargeDeclined"))
    with session_scope(deps.engine) as session:
        payload = session.get(OrderRow, order_id).payload
    assert payload["payment_method"] == "pm_card_chargeDeclined"
    assert (payload["card_last4"], payload["card_brand"]) == ("0002", "visa")
    assert "card_number" not in payload


def test_validate_accepts_a_token_the_gateway_made(deps, order_data):
    method = deps.gateway.create_payment_method(card_number="5555555555554444")
    order_id = pipeline.validate(deps, order_data(payment_method=method.id))
    assert steps_order(deps, order_id).card_last4 == "4444"
    assert pipeline.charge(deps, order_id)["amount"] == "49.99"


def test_validate_with_the_gateway_down_is_transient_and_stores_nothing(order_data, clean_db):
    unreachable = GatewayClient("http://127.0.0.1:9", timeout_seconds=0.5)
    deps = PaymentDeps(engine=clean_db, gateway=unreachable)
    with pytest.raises(GatewayUnavailable):
        pipeline.validate(deps, order_data())
    assert count(clean_db, OrderRow) == 0


def test_the_dead_letter_payload_of_refused_input_masks_a_card_number(order_data):
    from include.payments.order_form import masked

    safe = masked(order_data(payment_method="4242 4242 4242 4242", cvc="123"))
    assert safe["payment_method"] == "************4242" and "cvc" not in safe
    assert masked(order_data())["payment_method"] == "pm_card_visa"


def steps_order(deps, order_id):
    with session_scope(deps.engine) as session:
        return steps.load_order(session, order_id)


def test_validate_rejects_a_reused_order_id_with_other_content(deps, order_data):
    data = order_data()
    pipeline.validate(deps, data)
    with pytest.raises(InvalidOrder) as raised:
        pipeline.validate(deps, {**data, "amount": "1.00"})
    assert raised.value.field == "order_id"


# --- charge --------------------------------------------------------------------------------


def test_charge_twice_charges_once(deps, order_data, gateway_url):
    order_id = placed(deps, order_data)
    first = pipeline.charge(deps, order_id)
    second = pipeline.charge(deps, order_id)
    assert first == second
    assert Decimal(first["amount"]) == Decimal("49.99")
    assert count(deps.engine, ChargeRow, order_id=order_id) == 1
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1
    assert order_status(deps.engine, order_id) == "charged"


def test_declined_card_records_no_charge(deps, order_data, gateway_url):
    order_id = placed(deps, order_data, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    with pytest.raises(CardDeclined) as raised:
        pipeline.charge(deps, order_id)
    assert raised.value.decline_code == "insufficient_funds"
    assert not raised.value.retryable
    assert count(deps.engine, ChargeRow) == 0
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 0


def test_gateway_outage_is_transient_and_the_retry_charges_once(
    deps, order_data, gateway_url, gateway_admin
):
    order_id = placed(deps, order_data)
    gateway_admin.set_faults(fail_next=1)
    with pytest.raises(GatewayUnavailable) as raised:
        pipeline.charge(deps, order_id)
    assert raised.value.retryable
    assert count(deps.engine, ChargeRow) == 0
    pipeline.charge(deps, order_id)
    assert count(deps.engine, ChargeRow) == 1
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


def test_timed_out_charge_is_not_charged_again_on_retry(
    deps, order_data, gateway_url, gateway_admin
):
    """The gateway charged but answered too late: the retry gets the same charge."""
    order_id = placed(deps, order_data)
    gateway_admin.set_faults(timeout_rate=1, timeout_delay_seconds=1.5)
    impatient = PaymentDeps(deps.engine, GatewayClient(gateway_url, timeout_seconds=0.3))
    with pytest.raises(GatewayUnavailable):
        pipeline.charge(impatient, order_id)
    assert count(deps.engine, ChargeRow) == 0
    gateway_admin.set_faults(timeout_rate=0)
    pipeline.charge(deps, order_id)
    assert count(deps.engine, ChargeRow) == 1
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


def test_charge_of_an_unknown_order_fails(deps):
    with pytest.raises(OrderNotFound):
        pipeline.charge(deps, "ord-missing")


# --- inventory -----------------------------------------------------------------------------


def test_update_inventory_takes_stock_once(deps, order_data):
    order_id = placed(deps, order_data)
    pipeline.update_inventory(deps, order_id)
    pipeline.update_inventory(deps, order_id)
    assert stock(deps.engine, "SKU-MUG") == 98
    assert stock(deps.engine, "SKU-TEE") == 99
    assert count(deps.engine, ReservationRow, order_id=order_id, status="committed") == 2
    assert order_status(deps.engine, order_id) == "inventory_updated"


def test_out_of_stock_takes_nothing(deps, order_data):
    items = [{"sku": "SKU-MUG", "quantity": 5}, {"sku": "SKU-CAP", "quantity": 101}]
    order_id = placed(deps, order_data, items=items)
    with pytest.raises(OutOfStock) as raised:
        pipeline.update_inventory(deps, order_id)
    assert raised.value.sku == "SKU-CAP"
    assert stock(deps.engine, "SKU-MUG") == 100
    assert count(deps.engine, ReservationRow) == 0


def test_release_reservation_gives_stock_back_once(deps, order_data):
    order_id = placed(deps, order_data)
    with session_scope(deps.engine) as session:
        steps.reserve_inventory(session, order_id)
    assert stock(deps.engine, "SKU-MUG") == 98
    for _ in range(2):
        with session_scope(deps.engine) as session:
            steps.release_reservation(session, order_id)
    assert stock(deps.engine, "SKU-MUG") == 100
    assert count(deps.engine, ReservationRow, status="released") == 2


# --- receipt and shipping ------------------------------------------------------------------


def test_receipt_and_shipping_notice_are_recorded_once(deps, order_data):
    order_id = placed(deps, order_data)
    for _ in range(2):
        body = pipeline.send_receipt(deps, order_id)
        notice = pipeline.notify_shipping(deps, order_id)
    assert "Total charged: 49.99 USD" in body
    assert notice["address"]["country"] == "GB"
    assert count(deps.engine, ReceiptRow) == 1
    assert count(deps.engine, ShippingNoticeRow) == 1
    assert order_status(deps.engine, order_id) == "completed"


@pytest.mark.parametrize("step", ["update_inventory", "send_receipt", "notify_shipping"])
def test_steps_refuse_an_unknown_order(deps, step):
    with pytest.raises(OrderNotFound):
        getattr(pipeline, step)(deps, "ord-missing")


# --- refund --------------------------------------------------------------------------------


def test_refund_returns_the_whole_charge_once(deps, order_data, gateway_url):
    order_id = placed(deps, order_data)
    pipeline.charge(deps, order_id)
    for _ in range(2):
        with session_scope(deps.engine) as session:
            refund = steps.refund_charge(session, deps.gateway, order_id)
    assert refund is not None and refund.amount == Decimal("49.99")
    assert count(deps.engine, RefundRow) == 1
    assert gateway_stats(gateway_url)["refunds"] == 1


def test_refund_without_a_charge_does_nothing(deps, order_data, gateway_url):
    order_id = placed(deps, order_data)
    with session_scope(deps.engine) as session:
        assert steps.refund_charge(session, deps.gateway, order_id) is None
    assert count(deps.engine, RefundRow) == 0
    assert gateway_stats(gateway_url)["refunds"] == 0


# --- order status --------------------------------------------------------------------------


def test_status_never_moves_backwards_nor_out_of_failed(deps, order_data):
    order_id = placed(deps, order_data)
    with session_scope(deps.engine) as session:
        steps.advance_status(session, order_id, "receipt_sent")
        steps.advance_status(session, order_id, "charged")
    assert order_status(deps.engine, order_id) == "receipt_sent"
    with session_scope(deps.engine) as session:
        assert steps.fail_order(session, order_id, "boom")
        steps.advance_status(session, order_id, "completed")
        assert not steps.fail_order(session, order_id, "again")
    assert order_status(deps.engine, order_id) == "failed"

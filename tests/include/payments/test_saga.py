"""The payment saga on real PostgreSQL and the real gateway: its transition table, and
compensation proved by the business tables (refunds, released stock, cancelled receipts)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments.errors import GatewayRejected
from include.payments.saga import PAYMENT_MACHINE
from include.payments.tables import (
    ChargeRow,
    OrderRow,
    ReceiptCancellationRow,
    ReceiptRow,
    RefundRow,
    ReservationRow,
    ShippingNoticeRow,
    StockRow,
)
from segue.store.engine import session_scope

TABLES = {
    "charges": ChargeRow,
    "refunds": RefundRow,
    "receipts": ReceiptRow,
    "receipt_cancellations": ReceiptCancellationRow,
    "shipping_notices": ShippingNoticeRow,
}


def effects(engine, order_id):
    with session_scope(engine) as session:
        counts = {
            name: session.scalar(select(func.count()).select_from(t).where(t.order_id == order_id))
            for name, t in TABLES.items()
        }
        reservations = session.scalars(
            select(ReservationRow.status).where(ReservationRow.order_id == order_id)
        ).all()
        order = session.get(OrderRow, order_id)
        counts["reservations"] = sorted(reservations)
        counts["order"] = order.status if order else None
        counts["mugs"] = session.get(StockRow, "SKU-MUG").available
    return counts


def trail(store, instance_id):
    return [
        (row["from_state"], row["to_state"], row["event"]) for row in store.audit_trail(instance_id)
    ]


def test_transition_table_of_the_payment_machine():
    table = {
        (state.name, t.event): t.target
        for state in PAYMENT_MACHINE.states
        for t in state.transitions
    }
    assert table[("ORDER_RECEIVED", "done")] == "VALIDATING"
    assert table[("VALIDATING", "done")] == "CHARGING"
    assert table[("CHARGING", "done")] == "FULFILMENT"
    assert table[("CHARGING", "timeout")] == "FAILED"
    assert table[("FULFILMENT", "done")] == "SHIPPING_NOTIFIED"
    assert table[("SHIPPING_NOTIFIED", "done")] == "SUCCEEDED"
    assert {target for (_, event), target in table.items() if event == "failed"} == {"FAILED"}
    assert PAYMENT_MACHINE.state("FULFILMENT").branches == ("INVENTORY_RESERVED", "RECEIPT_SENT")


def test_a_good_order_succeeds_with_every_effect_once(saga, saga_store, order_data, deps):
    data = order_data()
    engine = saga()
    engine.start(data["order_id"], data)
    instance = engine.run(data["order_id"])
    assert (instance.state, instance.status) == ("SUCCEEDED", "succeeded")
    assert [(to, event) for _, to, event in trail(saga_store, data["order_id"])] == [
        ("ORDER_RECEIVED", "start"),
        ("VALIDATING", "done"),
        ("CHARGING", "done"),
        ("FULFILMENT", "done"),
        ("FULFILMENT", "INVENTORY_RESERVED+RECEIPT_SENT.done"),  # both branches at once
        ("SHIPPING_NOTIFIED", "done"),
        ("SUCCEEDED", "done"),
    ]
    result = effects(deps.engine, data["order_id"])
    assert result == {
        "charges": 1,
        "refunds": 0,
        "receipts": 1,
        "receipt_cancellations": 0,
        "shipping_notices": 1,
        "reservations": ["committed", "committed"],
        "order": "completed",
        "mugs": 98,
    }
    assert engine.run(data["order_id"]).version == instance.version  # final: nothing more


def boom(ctx):
    raise GatewayRejected(f"injected failure in {ctx.state}")


@pytest.mark.parametrize(
    ("failing_step", "failing", "undone", "expected"),
    [
        ("ORDER_RECEIVED", {"amount": "-1"}, [], {"order": None, "charges": 0, "refunds": 0}),
        (
            "VALIDATING",
            {"items": [{"sku": "SKU-NOPE", "quantity": 1}]},
            [],
            {"order": None, "charges": 0, "refunds": 0},
        ),
        (
            "CHARGING",
            {"payment_method": "pm_card_chargeDeclined"},
            ["VALIDATING"],
            {"order": "failed", "charges": 0, "refunds": 0},
        ),
        (  # the receipt went out in parallel: it is cancelled too
            "INVENTORY_RESERVED",
            {"items": [{"sku": "SKU-MUG", "quantity": 101}]},
            ["RECEIPT_SENT", "CHARGING", "VALIDATING"],
            {
                "order": "failed",
                "charges": 1,
                "refunds": 1,
                "receipts": 1,
                "receipt_cancellations": 1,
            },
        ),
        (
            "RECEIPT_SENT",
            "receipt",
            ["INVENTORY_RESERVED", "CHARGING", "VALIDATING"],
            {
                "order": "failed",
                "charges": 1,
                "refunds": 1,
                "reservations": ["released", "released"],
                "receipts": 0,
                "mugs": 100,
            },
        ),
        (
            "SHIPPING_NOTIFIED",
            "ship",
            ["RECEIPT_SENT", "INVENTORY_RESERVED", "CHARGING", "VALIDATING"],
            {
                "order": "failed",
                "charges": 1,
                "refunds": 1,
                "reservations": ["released", "released"],
                "receipts": 1,
                "receipt_cancellations": 1,
                "shipping_notices": 0,
                "mugs": 100,
            },
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_each_failing_step_compensates_exactly_the_completed_steps_in_reverse(
    saga, saga_store, order_data, deps, gateway_url, failing_step, failing, undone, expected
):
    if isinstance(failing, dict):
        data, engine = order_data(**failing), saga()
    else:
        data, engine = order_data(), saga(**{failing: boom})
    engine.start(data["order_id"], data)
    instance = engine.run(data["order_id"])
    steps_undone = [
        to.removeprefix("UNDO_")
        for _, to, _ in trail(saga_store, data["order_id"])
        if to.startswith("UNDO_")
    ]
    assert steps_undone == undone
    assert instance.status == ("compensated" if undone else "failed")
    assert failing_step in (instance.error or "") or failing_step in str(instance.context)
    result = effects(deps.engine, data["order_id"])
    for key, value in expected.items():
        assert result[key] == value, key
    assert gateway_stats(gateway_url)["refunds"] == expected["refunds"]
    # running the finished saga again changes nothing
    assert engine.run(data["order_id"]).version == instance.version
    assert effects(deps.engine, data["order_id"]) == result


def test_transient_charge_failures_wait_with_backoff_then_succeed(
    saga, saga_store, order_data, deps, gateway_url, gateway_admin
):
    gateway_admin.set_faults(fail_next=1)
    data = order_data()
    engine = saga()
    engine.start(data["order_id"], data)
    waiting = engine.run(data["order_id"])
    assert (waiting.state, waiting.wake_at is not None) == ("CHARGING", True)
    assert engine.must_wait(waiting)
    assert "GatewayUnavailable" in waiting.error
    resumed = engine.retry_now(data["order_id"], actor="ops@example.com")
    assert resumed.status == "succeeded"
    rows = saga_store.audit_trail(data["order_id"])
    assert [r["actor"] for r in rows if r["event"] == "retry_now"] == ["ops@example.com"]
    assert effects(deps.engine, data["order_id"])["charges"] == 1


def test_a_compensation_that_keeps_failing_parks_the_saga_for_a_human(
    saga, saga_store, order_data, deps, gateway_url
):
    def refund_down(ctx):
        raise GatewayRejected("refunds are down")

    data = order_data()
    engine = saga(ship=boom, refund=refund_down)
    engine.start(data["order_id"], data)
    instance = engine.run(data["order_id"])
    for _ in range(5):  # skip the compensation backoffs
        if instance.final:
            break
        instance = engine.retry_now(data["order_id"])
    assert (instance.state, instance.status) == ("COMPENSATION_FAILED", "compensation_failed")
    assert "refunds are down" in instance.error
    assert effects(deps.engine, data["order_id"])["refunds"] == 0
    # the gateway is fixed: a human retries from the current state
    fixed = saga(ship=boom)
    final = fixed.retry_now(data["order_id"], actor="ops")
    assert final.status == "compensated"
    assert effects(deps.engine, data["order_id"])["refunds"] == 1


def test_compensate_now_abandons_a_waiting_saga(
    saga, saga_store, order_data, deps, gateway_url, gateway_admin
):
    gateway_admin.set_faults(fail_next=1)
    data = order_data()
    engine = saga()
    engine.start(data["order_id"], data)
    assert engine.run(data["order_id"]).state == "CHARGING"
    final = engine.compensate_now(data["order_id"], actor="ops")
    assert final.status == "compensated"
    assert effects(deps.engine, data["order_id"])["order"] == "failed"
    with pytest.raises(Exception, match="cannot compensate"):
        engine.compensate_now(data["order_id"])

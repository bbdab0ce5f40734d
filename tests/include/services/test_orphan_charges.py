"""A charge the gateway made while our call timed out, for an order that failed meanwhile.

The gateway processes the charge and then stalls past the client's timeout (``timeout_rate``):
the charge service's transaction rolls back with nothing recorded, and out of stock fails the
order before the redelivery. Every test counts in the gateway's ledger and in our tables that
the charge is recorded and refunded exactly once, whichever event gets there first.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from include.gateway.admin import GatewayAdmin
from include.payments import pipeline, reconcile, steps
from include.payments.errors import GatewayUnavailable
from include.payments.events import InventoryReservationFailed, RefundIssued
from include.payments.gateway_client import GatewayClient
from include.payments.tables import ChargeRow, RefundRow
from segue.step_runner import StepAbandoned, run_step
from segue.store.dead_letters import DeadLetter
from segue.store.engine import session_scope
from tests.conftest import order_of

CLIENT_TIMEOUT = 2.0  # the ``gateway`` fixture's client (tests/include/services/conftest.py)
STALL = CLIENT_TIMEOUT + 1.0
SHORT = [{"sku": "SKU-MUG", "quantity": 101}]  # 100 in stock: out of stock


def stall_after_processing(gateway_admin: GatewayAdmin) -> None:
    gateway_admin.set_faults(timeout_rate=1.0, timeout_delay_seconds=STALL)


def no_faults(gateway_admin: GatewayAdmin) -> None:
    gateway_admin.set_faults(timeout_rate=0.0)


def lost_charge(bus, make_order, order_placed, gateway_admin):  # type: ignore[no-untyped-def]
    """An out-of-stock order charged at the gateway with the answer lost, then failed."""
    order = make_order(items=SHORT)
    [validated] = bus.deliver("validation", order_placed(order))
    stall_after_processing(gateway_admin)
    with pytest.raises(GatewayUnavailable):
        bus.deliver("charge", validated)
    no_faults(gateway_admin)
    [out_of_stock] = bus.deliver("inventory", validated)
    assert isinstance(out_of_stock.data, InventoryReservationFailed)
    return order, validated, out_of_stock


def assert_refunded_once(  # type: ignore[no-untyped-def]
    store, gateway: GatewayClient, gateway_admin: GatewayAdmin, order_id: str
) -> None:
    [charge] = gateway.list_charges(reference=order_id)
    assert (charge.status, charge.amount, charge.amount_refunded) == (
        "succeeded",
        Decimal("49.99"),
        Decimal("49.99"),
    )
    stats = gateway_admin.stats()
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (1, 1)
    assert store.count(ChargeRow, order_id=order_id, gateway_charge_id=charge.id) == 1
    assert store.count(RefundRow, order_id=order_id, gateway_charge_id=charge.id) == 1
    assert store.count(ChargeRow) == store.count(RefundRow) == 1
    assert store.order(order_id).status == "failed"


def test_out_of_stock_refunds_the_charge_whose_answer_was_lost(
    bus, store, gateway, make_order, order_placed, gateway_admin
):
    order, validated, out_of_stock = lost_charge(bus, make_order, order_placed, gateway_admin)
    assert store.count(ChargeRow) == 0  # rolled back: only the gateway knows
    assert gateway_admin.stats()["injected_timeouts"] == 1

    [refunded] = twice(bus, "charge", out_of_stock)  # and a redelivery of the same event
    assert isinstance(refunded.data, RefundIssued)
    assert refunded.data.amount == Decimal("49.99")

    # The charge service's own redelivery of OrderValidated finds the refund recorded: it
    # announces it (from its own cause) and charges and refunds nothing again.
    [announced] = twice(bus, "charge", validated)
    assert announced.data.gateway_refund_id == refunded.data.gateway_refund_id
    assert_refunded_once(store, gateway, gateway_admin, order.order_id)


def test_redelivered_order_validated_refunds_it_when_it_comes_first(
    bus, store, gateway, make_order, order_placed, gateway_admin
):
    order, validated, out_of_stock = lost_charge(bus, make_order, order_placed, gateway_admin)

    [refunded] = twice(bus, "charge", validated)  # the redelivery finds the order failed
    assert isinstance(refunded.data, RefundIssued)
    assert "order failed: out of stock" in refunded.data.reason
    [announced] = bus.deliver("charge", out_of_stock)  # the refund found, not repeated
    assert announced.data.gateway_refund_id == refunded.data.gateway_refund_id
    assert_refunded_once(store, gateway, gateway_admin, order.order_id)


def test_both_events_at_once_refund_once(
    bus, store, gateway, make_order, order_placed, gateway_admin
):
    order, validated, out_of_stock = lost_charge(bus, make_order, order_placed, gateway_admin)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def deliver(envelope) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            bus.deliver("charge", envelope)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(e,)) for e in (validated, out_of_stock)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert_refunded_once(store, gateway, gateway_admin, order.order_id)


def test_a_refund_whose_answer_is_lost_is_replayed_not_repeated(
    bus, store, gateway, make_order, order_placed, gateway_admin
):
    order, _, out_of_stock = lost_charge(bus, make_order, order_placed, gateway_admin)
    stall_after_processing(gateway_admin)  # the refund is made, its answer lost
    with pytest.raises(GatewayUnavailable):
        bus.deliver("charge", out_of_stock)
    assert store.count(ChargeRow) == store.count(RefundRow) == 0
    no_faults(gateway_admin)

    [refunded] = bus.deliver("charge", out_of_stock)
    assert isinstance(refunded.data, RefundIssued)
    stats = gateway_admin.stats()
    assert stats["replays"] == 1  # the same idempotency key got the same refund back
    assert_refunded_once(store, gateway, gateway_admin, order.order_id)


def test_a_live_order_is_never_reconciled(store, gateway, clean_db, order_data, gateway_admin):
    """Only a failed order's charges are refunded: a live one's may be recorded any moment."""
    with session_scope(clean_db) as session:
        order = steps.validate_order(session, order_of(order_data()))
    stall_after_processing(gateway_admin)
    with pytest.raises(GatewayUnavailable), session_scope(clean_db) as session:
        steps.charge_card(session, gateway, order.order_id)
    no_faults(gateway_admin)
    with session_scope(clean_db) as session:
        assert reconcile.refund_unrecorded_charges(session, gateway, order.order_id) == []
    assert gateway_admin.stats()["refunds"] == 0


def test_linear_charge_step_abandoned_on_timeouts_refunds_the_lost_charge(
    store, deps, order_data, gateway_admin
):
    """The DAG's charge task out of retries, every answer lost: failed, dead letter, refunded."""
    order_id = pipeline.validate(deps, order_data())
    stall_after_processing(gateway_admin)
    attempts = 2

    def charge_attempt(attempt: int) -> None:
        def action() -> object:
            try:
                return pipeline.charge(deps, order_id)
            finally:
                if attempt == attempts:
                    no_faults(gateway_admin)  # the gateway answers again by the abandon

        run_step(
            action,
            engine=deps.engine,
            workflow="payment_pipeline",
            step="charge",
            subject=order_id,
            payload={"order_id": order_id},
            attempt=attempt,
            max_attempts=attempts,
            on_abandon=pipeline.fail_and_reconcile_on_abandon(deps, order_id),
        )

    with pytest.raises(GatewayUnavailable):
        charge_attempt(1)  # Airflow retries the task
    with pytest.raises(StepAbandoned):
        charge_attempt(2)

    assert store.count(DeadLetter, subject=order_id, step="charge") == 1
    assert gateway_admin.stats()["injected_timeouts"] == 2
    assert_refunded_once(store, deps.gateway, gateway_admin, order_id)
    assert pipeline.reconcile_failed_order(deps, order_id) == []  # run again: nothing more


def twice(bus, service, envelope):  # type: ignore[no-untyped-def]
    """Deliver twice in separate transactions: the same events, the same ids."""
    first = bus.deliver(service, envelope)
    again = bus.deliver(service, envelope)
    assert [(e.id, e.data) for e in first] == [(e.id, e.data) for e in again]
    return first


def test_every_charge_under_the_reference_is_refunded_once(
    bus, store, gateway, make_order, order_placed, gateway_admin
):
    """Two charges under one reference (not our keys: say the gateway forgot ours)."""
    order, validated, out_of_stock = lost_charge(bus, make_order, order_placed, gateway_admin)
    gateway.charge(
        idempotency_key="someone-else",
        amount=Decimal("5.00"),
        currency="USD",
        payment_method=order.payment_method,
        reference=order.order_id,
    )

    refunded = twice(bus, "charge", out_of_stock)
    assert len({event.id for event in refunded}) == 2
    assert sorted(event.data.amount for event in refunded) == [Decimal("5.00"), Decimal("49.99")]
    assert len(twice(bus, "charge", validated)) == 2  # announced, not refunded again

    charges = gateway.list_charges(reference=order.order_id)
    assert [c.amount_refunded for c in charges] == [c.amount for c in charges]
    stats = gateway_admin.stats()
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (2, 2)
    assert store.count(ChargeRow, order_id=order.order_id) == 2
    assert store.count(RefundRow, order_id=order.order_id) == 2

"""An order is complete only when every step is done: receipt AND shipping, in either order.

The receipt and shipping services both react to InventoryUpdated; before the fix, the shipping
step completed the order on its own, so a stopped receipt service left orders ``completed``
without a receipt.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from include.payments import steps
from include.payments.events import InventoryUpdated
from include.payments.tables import ReceiptRow, ShippingNoticeRow
from segue.store.engine import session_scope
from segue.testing import InMemoryBus


def run_without(bus: InMemoryBus, service: str, *envelopes):
    """Run the flow with ``service`` stopped; returns everything emitted."""
    running = [spec for name, spec in bus.services.items() if name != service]
    return InMemoryBus(bus.engine, running).run(*envelopes)


@pytest.mark.parametrize("late", ["receipt", "shipping"])
def test_order_completes_only_when_receipt_and_shipping_are_both_recorded(
    bus, store, make_order, order_placed, late
):
    order = make_order()
    events = run_without(bus, late, order_placed(order))

    assert store.order(order.order_id).status != "completed", f"completed without {late}"
    assert store.order(order.order_id).status not in ("failed",)
    [updated] = [event for event in events if isinstance(event.data, InventoryUpdated)]

    bus.deliver(late, updated)  # the stopped service comes back and handles its backlog
    assert store.order(order.order_id).status == "completed"
    assert store.count(ReceiptRow) == store.count(ShippingNoticeRow) == 1


def test_receipt_and_shipping_in_parallel_complete_every_order(
    bus, store, make_order, order_placed, clean_db: Engine
):
    """Both last steps committed at the same moment in two transactions: each order completes
    exactly when both rows exist, never missed (the order row lock orders the two checks)."""
    orders = [make_order() for _ in range(20)]
    for order in orders:
        run_without(bus, "receipt", order_placed(order))
        with session_scope(clean_db) as session:  # undo shipping: we replay both together
            session.query(ShippingNoticeRow).filter_by(order_id=order.order_id).delete()
    errors: list[BaseException] = []

    def step(function, order_id: str, barrier: threading.Barrier) -> None:
        try:
            with session_scope(clean_db) as session:
                barrier.wait(timeout=10)
                function(session, order_id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    for order in orders:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=step, args=(steps.send_receipt, order.order_id, barrier)),
            threading.Thread(target=step, args=(steps.notify_shipping, order.order_id, barrier)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    statuses = {store.order(order.order_id).status for order in orders}
    assert statuses == {"completed"}

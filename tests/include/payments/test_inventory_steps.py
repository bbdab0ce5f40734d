"""The set-based inventory and order-row steps: what the Core statements must keep doing.

Real PostgreSQL: stock never negative, a short line found before anything is written (the
inventory service no longer wraps the reservation in a savepoint), a redelivery takes nothing
twice, rows locked in SKU order so orders sharing SKUs in opposite line order never deadlock.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from include.payments import pipeline, steps
from include.payments.errors import OrderNotFound, OutOfStock
from include.payments.tables import OrderRow, ReservationRow, StockRow
from segue.store.engine import session_scope


def stock(engine, sku: str) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(StockRow.available).where(StockRow.sku == sku))


def reservations(engine, order_id: str) -> dict[str, tuple[int, str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(ReservationRow.sku, ReservationRow.quantity, ReservationRow.status).where(
                ReservationRow.order_id == order_id
            )
        )
        return {row.sku: (row.quantity, row.status) for row in rows}


def placed(deps, order_data, **overrides) -> str:
    return pipeline.validate(deps, order_data(**overrides))


def test_a_short_line_writes_nothing_even_when_the_caller_commits(deps, order_data):
    items = [{"sku": "SKU-MUG", "quantity": 5}, {"sku": "SKU-CAP", "quantity": 101}]
    order_id = placed(deps, order_data, items=items)
    with session_scope(deps.engine) as session:  # no savepoint: this transaction commits
        with pytest.raises(OutOfStock) as raised:
            steps.reserve_inventory(session, order_id)
        assert steps.fail_order(session, order_id, str(raised.value))
    assert raised.value.sku == "SKU-CAP"
    assert "requested 101, available 100" in str(raised.value)
    assert stock(deps.engine, "SKU-MUG") == 100
    assert reservations(deps.engine, order_id) == {}


def test_the_first_short_line_in_line_order_is_reported(deps, order_data):
    items = [{"sku": "SKU-TEE", "quantity": 101}, {"sku": "SKU-CAP", "quantity": 102}]
    order_id = placed(deps, order_data, items=items)
    with pytest.raises(OutOfStock) as raised:
        pipeline.update_inventory(deps, order_id)
    assert raised.value.sku == "SKU-TEE"


def test_a_line_already_reserved_is_not_taken_again(deps, order_data):
    order_id = placed(deps, order_data)
    with session_scope(deps.engine) as session:  # an earlier delivery reserved the mug only
        session.add(ReservationRow(order_id=order_id, sku="SKU-MUG", quantity=2, status="reserved"))
    with session_scope(deps.engine) as session:
        lines = steps.reserve_inventory(session, order_id)
    assert lines == [{"sku": "SKU-MUG", "quantity": 2}, {"sku": "SKU-TEE", "quantity": 1}]
    assert stock(deps.engine, "SKU-MUG") == 100
    assert stock(deps.engine, "SKU-TEE") == 99
    assert reservations(deps.engine, order_id) == {
        "SKU-MUG": (2, "reserved"),
        "SKU-TEE": (1, "reserved"),
    }


def test_reserving_an_order_read_under_its_lock_uses_that_order(deps, order_data):
    order_id = placed(deps, order_data)
    with session_scope(deps.engine) as session:
        status, order = steps.lock_order(session, order_id)
        assert status == "validated" and order.order_id == order_id
        steps.reserve_inventory(session, order_id, order=order)
        steps.reserve_inventory(session, order_id, order=order)
        assert steps.reservation_lines(session, order_id, ("reserved",)) == 2
    assert stock(deps.engine, "SKU-MUG") == 98


def test_release_gives_back_reserved_and_committed_lines_once(deps, order_data):
    order_id = placed(deps, order_data)
    pipeline.update_inventory(deps, order_id)
    with session_scope(deps.engine) as session:
        assert steps.release_reservation(session, order_id) == 2
        assert steps.release_reservation(session, order_id) == 0
        assert steps.reservation_lines(session, order_id, ("released",)) == 2
    assert stock(deps.engine, "SKU-MUG") == 100
    assert stock(deps.engine, "SKU-TEE") == 100


def test_orders_sharing_skus_in_opposite_line_order_never_deadlock(deps, order_data):
    forward = [{"sku": "SKU-MUG", "quantity": 1}, {"sku": "SKU-TEE", "quantity": 1}]
    backward = list(reversed(forward))
    orders = [placed(deps, order_data, items=forward if i % 2 else backward) for i in range(80)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def reserve_all(order_ids: list[str]) -> None:
        start.wait()
        for order_id in order_ids:
            try:
                with session_scope(deps.engine) as session:
                    steps.reserve_inventory(session, order_id)
                    steps.release_reservation(session, order_id)
            except BaseException as exc:  # a deadlock would surface here
                errors.append(exc)

    threads = [threading.Thread(target=reserve_all, args=(orders[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert stock(deps.engine, "SKU-MUG") == 100 and stock(deps.engine, "SKU-TEE") == 100
    with session_scope(deps.engine) as session:
        released = session.scalar(
            select(func.count())
            .select_from(ReservationRow)
            .where(ReservationRow.status == "released")
        )
    assert released == 160


def test_order_row_steps_on_an_unknown_order(deps):
    with session_scope(deps.engine) as session:
        assert steps.lock_order(session, "ord-missing") is None
        assert steps.locked_status(session, "ord-missing") is None
        assert not steps.fail_order(session, "ord-missing", "boom")
        with pytest.raises(OrderNotFound):
            steps.advance_status(session, "ord-missing", "charged")
        with pytest.raises(OrderNotFound):
            steps.load_order(session, "ord-missing")


def test_advance_status_writes_the_row_and_keeps_a_further_status(deps, order_data):
    order_id = placed(deps, order_data)
    with session_scope(deps.engine) as session:
        steps.advance_status(session, order_id, "inventory_updated")
        steps.advance_status(session, order_id, "inventory_updated")  # no change, no error
        steps.advance_status(session, order_id, "validated")
        assert steps.locked_status(session, order_id) == "inventory_updated"
        with pytest.raises(ValueError):
            steps.advance_status(session, order_id, "failed")
    with session_scope(deps.engine) as session:
        row = session.get(OrderRow, order_id)
        assert row.status == "inventory_updated"
        assert row.updated_at > row.created_at

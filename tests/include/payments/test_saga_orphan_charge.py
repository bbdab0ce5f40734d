"""A saga whose CHARGING never got an answer: the gateway charged on the first attempt (the
answer was lost), then was down until the retries ran out. Nothing in our tables says money was
taken, so the ``refund`` compensation has nothing to undo; failing the order must still refund
that charge, once. Counted in the gateway's ledger and in our tables (real PostgreSQL, real
gateway process)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments.saga import payment_machine
from include.payments.tables import ChargeRow, OrderRow, RefundRow
from segue.statemachine.machine import ActionContext
from segue.statemachine.runner import SagaRunner
from segue.store.engine import session_scope, utcnow

CLIENT_TIMEOUT = 2.0  # the ``deps`` fixture's gateway client (tests/conftest.py)


def count(engine, table, order_id: str) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(table).where(table.order_id == order_id)
        return int(session.scalar(query) or 0)


def test_a_charge_whose_answer_was_lost_is_refunded_when_the_saga_fails(
    deps, saga_store, order_data, gateway_url, gateway_admin
):
    now = [utcnow()]
    engine = SagaRunner(payment_machine(deps), saga_store, actor="test", clock=lambda: now[0])
    data = order_data()
    order_id = data["order_id"]

    # First attempt: the gateway charges, then stalls past the client's timeout.
    gateway_admin.set_faults(timeout_rate=1.0, timeout_delay_seconds=CLIENT_TIMEOUT + 1)
    engine.start(order_id, data)
    instance = engine.run(order_id)
    assert (instance.state, instance.wake_at is not None) == ("CHARGING", True)
    assert count(deps.engine, ChargeRow, order_id) == 0  # only the gateway knows

    # Then the gateway is down (503 before processing) for every retry left.
    gateway_admin.set_faults(timeout_rate=0.0, fail_next=3)  # attempts 2-4
    for _ in range(10):
        now[0] += timedelta(minutes=5)  # past any backoff
        instance = engine.run(order_id)
        if instance.final:
            break
    assert instance.status == "compensated", instance

    [charge] = deps.gateway.list_charges(reference=order_id)
    assert (charge.status, charge.amount, charge.amount_refunded) == (
        "succeeded",
        Decimal("49.99"),
        Decimal("49.99"),
    )
    stats = gateway_stats(gateway_url)
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (1, 1)
    assert count(deps.engine, ChargeRow, order_id) == count(deps.engine, RefundRow, order_id) == 1
    with session_scope(deps.engine) as session:
        assert session.get(OrderRow, order_id).status == "failed"

    # Compensating again (a retry of the last compensation after a crash) refunds nothing more.
    again = ActionContext(order_id, "UNDO_VALIDATING", dict(instance.data), attempt=2, error="x")
    engine.machine.actions["cancel_order"](again)
    assert gateway_stats(gateway_url)["refunds"] == 1

"""A DAG step that gives up after the charge refunds it: no charge outlives a failed order.

The linear and hybrid DAGs run their steps through ``segue.step_runner.run_step`` with
``pipeline.fail_and_reconcile_on_abandon`` as the hook; here the same call runs in process on
real PostgreSQL and the real gateway, and the refund is counted in both.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline
from include.payments.deps import PaymentDeps
from include.payments.tables import ChargeRow, OrderRow, RefundRow
from segue.step_runner import StepAbandoned, run_step
from segue.store.engine import session_scope


def run_dag_step(deps: PaymentDeps, step: str, order_id: str, attempt: int = 1) -> object:
    action = {"update_inventory": pipeline.update_inventory, "send_receipt": pipeline.send_receipt}
    return run_step(
        lambda: action[step](deps, order_id),
        engine=deps.engine,
        workflow="payment_pipeline",
        step=step,
        subject=order_id,
        payload={},
        attempt=attempt,
        max_attempts=4,
        on_abandon=pipeline.fail_and_reconcile_on_abandon(deps, order_id),
    )


def test_stock_running_out_after_the_charge_fails_the_order_and_refunds_it_once(
    deps: PaymentDeps, order_data, gateway_url: str
) -> None:
    refunds_before = int(gateway_stats(gateway_url)["refunds"])
    order_id = pipeline.validate(deps, order_data(items=[{"sku": "SKU-CAP", "quantity": 101}]))
    pipeline.charge(deps, order_id)
    with pytest.raises(StepAbandoned, match="OutOfStock"):
        run_dag_step(deps, "update_inventory", order_id)  # permanent: abandoned at once
    # The failure callback runs the same hook again (Airflow may call it after the step did).
    with pytest.raises(StepAbandoned):
        run_dag_step(deps, "update_inventory", order_id, attempt=2)

    with session_scope(deps.engine) as session:
        order = session.get(OrderRow, order_id)
        refunds = session.scalars(select(RefundRow).where(RefundRow.order_id == order_id)).all()
        charges = session.scalar(
            select(func.count()).select_from(ChargeRow).where(ChargeRow.order_id == order_id)
        )
    assert order is not None and order.status == "failed"
    assert "OutOfStock" in (order.failure_reason or "")
    assert charges == 1 and len(refunds) == 1
    assert refunds[0].amount == order.amount and refunds[0].idempotency_key == f"{order_id}:refund"
    assert int(gateway_stats(gateway_url)["refunds"]) == refunds_before + 1

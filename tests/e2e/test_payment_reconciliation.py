"""payment_reconciliation in a real Airflow, triggered through the REST API v2 with a window.

A failed order whose charge landed at the gateway after it failed: the run refunds it, writes
its report row under the Airflow run id with the window it was given, and the Operations page
of the real api-server shows it. Refunds are counted in our table and the gateway's ledger.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from include.gateway.admin import stats as gateway_stats
from include.payments import pipeline, steps
from include.payments.deps import PaymentDeps
from include.payments.reconciliation_tables import ReconciliationFindingRow, ReconciliationRunRow
from include.payments.tables import RefundRow
from segue.store.engine import session_scope
from tests.conftest import GOOD_TOKEN

pytestmark = pytest.mark.e2e
DAG_ID = "payment_reconciliation"


def test_a_triggered_run_with_a_window_refunds_and_writes_its_report(
    airflow_api, airflow_stack, deps: PaymentDeps, order_data, gateway_url: str
) -> None:
    airflow_api.wait_for_dag(DAG_ID)
    order_id = pipeline.validate(deps, order_data())
    with session_scope(deps.engine) as session:
        steps.fail_order(session, order_id, "charge: out of retries")
    late = deps.gateway.charge(  # the charge lands after the order failed
        idempotency_key=f"{order_id}:charge",
        amount=Decimal("49.99"),
        currency="USD",
        payment_method=GOOD_TOKEN,
        reference=order_id,
    )
    start = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    end = start + timedelta(minutes=20)

    run_id = airflow_api.trigger_dag_run(
        DAG_ID, {"start": start.isoformat(), "end": end.isoformat()}
    )
    run = airflow_api.wait_for_run(DAG_ID, run_id, timeout=240)

    assert run["state"] == "success", airflow_api.task_logs(DAG_ID, run_id, "reconcile")
    with session_scope(deps.engine) as session:
        report = session.get(ReconciliationRunRow, run_id)
        assert report is not None
        assert (report.window_start, report.window_end) == (start, end)
        assert (report.status, report.refunds_made, report.findings) == ("completed", 1, 1)
        [finding] = session.scalars(
            select(ReconciliationFindingRow).where(ReconciliationFindingRow.run_id == run_id)
        ).all()
        assert (finding.kind, finding.action, finding.gateway_charge_id) == (
            "charge_on_failed_order",
            "refunded",
            late.id,
        )
        refunds = session.scalar(
            select(func.count()).select_from(RefundRow).where(RefundRow.order_id == order_id)
        )
    assert refunds == 1
    assert gateway_stats(gateway_url)["refunds"] == 1

    headers = {"Authorization": f"Bearer {airflow_api.token()}"}
    page = httpx.get(f"{airflow_stack.url}/segue/api/reports/operations", headers=headers)
    assert page.status_code == 200, page.text
    headings = [section["heading"] for section in page.json()["sections"]]
    assert f"Run {run_id}" in headings

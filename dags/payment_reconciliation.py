"""
### payment_reconciliation: the gateway's ledger against our store

Hourly, and on demand with a window (*Params* `start` and `end`, ISO 8601 date-times with a
timezone; empty: the two hours before the run's data interval end, so hourly runs overlap).
It lists the gateway's charges created in the window and compares them with the business store:

- a charge whose order **failed**, or that names **no order** we hold, is **refunded**, exactly
  once (the keys every path uses: a second run refunds nothing);
- a charge on an order still in progress (older than `SEGUE_RECONCILIATION_GRACE_SECONDS`), a
  second charge on a completed order, a recorded charge the gateway does not know, and an
  amount that differs are **flagged** for a person.

Each run writes a row to `reconciliation_runs` and one per finding to
`reconciliation_findings`; the *Operations* page of the Segue plugin shows the latest ones.
The logic is `include/payments/reconciliation.py` (no Airflow there).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from include.payments import reconciliation, retry
from include.payments.deps import default_deps
from include.payments.reconciliation_report import report_json
from include.payments.settings import get_payment_settings

WINDOW_PARAM = {
    "type": ["null", "string"],
    "format": "date-time",
}


@dag(
    dag_id="payment_reconciliation",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["segue", "payments", "reconciliation", "operations"],
    params={
        "start": Param(None, **WINDOW_PARAM, description="Window start (empty: end - 2 h)."),
        "end": Param(None, **WINDOW_PARAM, description="Window end, excluded (empty: now)."),
    },
    default_args={"owner": "payments", **retry.RECONCILIATION_TASK_RETRIES},
)
def payment_reconciliation() -> None:
    @task
    def reconcile() -> dict[str, Any]:
        context = get_current_context()
        reference = context.get("data_interval_end") or datetime.now(UTC)
        params = context["params"]
        start, end = reconciliation.window_from_params(
            params.get("start"), params.get("end"), reference
        )
        grace = timedelta(seconds=get_payment_settings().reconciliation_grace_seconds)
        report = reconciliation.reconcile_window(
            default_deps(), context["run_id"], start, end, grace=grace
        )
        return report_json(report)

    reconcile()


payment_reconciliation()

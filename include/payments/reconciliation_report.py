"""The reconciliation report as values: a run and its findings, read back from their tables.

``latest_reports`` is what the Operations page in the Airflow UI shows
(``operations_page``, named to the Segue plugin in ``SEGUE_REPORT_PAGES``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from include.payments.reconciliation_tables import ReconciliationFindingRow, ReconciliationRunRow
from segue.store.engine import session_scope

FindingKind = Literal[
    "charge_on_failed_order",
    "charge_without_order",
    "charge_without_reference",
    "charge_on_open_order",
    "unrecorded_charge",
    "charge_unknown_to_gateway",
    "amount_mismatch",
    "refund_refused",
]


class Finding(BaseModel):
    """One disagreement between the gateway's ledger and our store, and what was done."""

    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    action: Literal["refunded", "flagged"]
    order_id: str | None = None
    gateway_charge_id: str | None = None
    gateway_amount: Decimal | None = None
    store_amount: Decimal | None = None
    refund_id: str | None = None
    detail: str


class RunReport(BaseModel):
    """One reconciliation run: its window, what it checked, and its findings."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    window_start: datetime
    window_end: datetime
    status: str
    charges_checked: int
    orders_checked: int
    refunds_made: int
    started_at: datetime
    finished_at: datetime | None
    findings: tuple[Finding, ...]


def read_run(session: Session, run_id: str) -> RunReport:
    """The report of run ``run_id``.

    :param session: a session of the business store.
    :param run_id: a run's id.
    :raises LookupError: there is no such run.
    """
    run = session.get(ReconciliationRunRow, run_id)
    if run is None:
        raise LookupError(f"no reconciliation run {run_id!r}")
    return _report(session, run)


def latest_reports(engine: Engine, limit: int = 20) -> list[RunReport]:
    """The ``limit`` most recent runs, newest first, each with its findings.

    :param engine: the business store.
    :param limit: how many runs.
    """
    with session_scope(engine) as session:
        runs = session.scalars(
            select(ReconciliationRunRow)
            .order_by(ReconciliationRunRow.started_at.desc(), ReconciliationRunRow.run_id)
            .limit(limit)
        ).all()
        return [_report(session, run) for run in runs]


def _report(session: Session, run: ReconciliationRunRow) -> RunReport:
    rows = session.scalars(
        select(ReconciliationFindingRow)
        .where(ReconciliationFindingRow.run_id == run.run_id)
        .order_by(ReconciliationFindingRow.id)
    ).all()
    findings = tuple(
        Finding(
            kind=row.kind,  # type: ignore[arg-type]
            action=row.action,  # type: ignore[arg-type]
            order_id=row.order_id,
            gateway_charge_id=row.gateway_charge_id,
            gateway_amount=row.gateway_amount,
            store_amount=row.store_amount,
            refund_id=row.refund_id,
            detail=row.detail,
        )
        for row in rows
    )
    return RunReport(
        run_id=run.run_id,
        window_start=run.window_start,
        window_end=run.window_end,
        status=run.status,
        charges_checked=run.charges_checked,
        orders_checked=run.orders_checked,
        refunds_made=run.refunds_made,
        started_at=run.started_at,
        finished_at=run.finished_at,
        findings=findings,
    )


def report_json(report: RunReport) -> dict[str, Any]:
    """``report`` as JSON-safe data (Airflow XCom, the CLI, the Operations page's API).

    :param report: a run's report.
    """
    return report.model_dump(mode="json")

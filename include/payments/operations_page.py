"""The *Operations* page of the Segue plugin: the latest reconciliation runs and their findings.

Named to the plugin in ``include.workflow`` (``SEGUE_REPORT_PAGES``); the plugin renders the
:class:`segue.reports.ReportPage` this returns and knows nothing of payments.
"""

from __future__ import annotations

from sqlalchemy import Engine

from include.payments.reconciliation_report import Finding, RunReport, latest_reports
from segue.reports import ReportPage, ReportSection, ReportTable

RUNS_SHOWN = 20
FINDING_COLUMNS = (
    "Kind",
    "Action",
    "Order",
    "Gateway charge",
    "Gateway",
    "Store",
    "Refund",
    "Detail",
)


def operations_page(engine: Engine | None = None, *, runs: int = RUNS_SHOWN) -> ReportPage:
    """The latest ``runs`` reconciliation runs, newest first, each with its findings.

    :param engine: the business store (default: ``SEGUE_DATABASE_URL``, migrated).
    :param runs: how many runs to show.
    """
    if engine is None:
        from include.payments.database import payments_engine
        from segue.settings import get_settings

        engine = payments_engine(get_settings().database_url)
    reports = latest_reports(engine, runs)
    return ReportPage(
        title="Operations",
        intro=(
            "payment_reconciliation compares the gateway's ledger with the business store: "
            "charges of failed or unknown orders are refunded once; the rest is flagged here."
        ),
        sections=tuple(_section(report) for report in reports),
        empty="No reconciliation has run yet (DAG payment_reconciliation, hourly).",
    )


def _section(report: RunReport) -> ReportSection:
    flagged = sum(1 for finding in report.findings if finding.action == "flagged")
    return ReportSection(
        heading=f"Run {report.run_id}",
        status=report.status,
        facts=(
            ("Window", f"{report.window_start.isoformat()} → {report.window_end.isoformat()}"),
            ("Finished", report.finished_at.isoformat() if report.finished_at else "running"),
            ("Charges checked", str(report.charges_checked)),
            ("Orders checked", str(report.orders_checked)),
            ("Refunds made", str(report.refunds_made)),
            ("Flagged", str(flagged)),
        ),
        tables=(
            ReportTable(
                columns=FINDING_COLUMNS,
                rows=tuple(_row(finding) for finding in report.findings),
                empty="The ledger and the store agree.",
            ),
        ),
    )


def _row(finding: Finding) -> tuple[str, ...]:
    return (
        finding.kind,
        finding.action,
        finding.order_id or "",
        finding.gateway_charge_id or "",
        "" if finding.gateway_amount is None else str(finding.gateway_amount),
        "" if finding.store_amount is None else str(finding.store_amount),
        finding.refund_id or "",
        finding.detail,
    )

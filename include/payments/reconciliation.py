"""Reconciliation of the gateway's ledger with the business store over a window of time.

The paths settle a failed order's money when it fails (``money.settle_failed_order``); this is
the safety net for what they cannot see, run on a schedule (``payment_reconciliation``):

- a **charge without a completed order** is refunded exactly once: the order failed (settled
  with ``settle_failed_order``, the same keys as every path), or no such order exists
  (``reconcile.refund_charge_without_order``, the same per-charge key);
- a charge on an order still in progress (no charge recorded, older than ``grace``) or a
  second charge on a completed order is **flagged**, not refunded: a path may still record it
  (refunding a charge an order then completes with would ship goods unpaid), so a person looks;
- an order whose recorded charge the gateway does not know is **flagged**;
- a charge whose amount differs from the recorded charge or the order is **flagged**.

Every run writes a report row and one row per finding (``reconciliation_tables``). A run is
idempotent by its id (an Airflow task retry redoes the same run): the refunds are keyed, the
findings unique per run, and the run's counts are read back from its findings.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from include.payments import money, reconcile, steps
from include.payments.deps import PaymentDeps
from include.payments.errors import GatewayRejected
from include.payments.gateway_client import GatewayCharge
from include.payments.reconciliation_report import Finding, RunReport, read_run
from include.payments.reconciliation_tables import ReconciliationFindingRow, ReconciliationRunRow
from include.payments.shadow import SHADOW_PREFIX
from include.payments.tables import ChargeRow, OrderRow
from segue.store.engine import session_scope, utcnow
from segue.store.inserts import insert_if_absent

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(minutes=30)
"""A charge this recent on an open or unknown order may still be recorded by its path."""
DEFAULT_WINDOW = timedelta(hours=2)
"""A run without a window covers this long before its reference time (hourly runs overlap)."""


def window_from_params(
    start: str | None, end: str | None, reference: datetime
) -> tuple[datetime, datetime]:
    """The window a run was asked for: ISO 8601 ``start``/``end``, by default the
    ``DEFAULT_WINDOW`` before ``reference`` (or before ``end``, or after ``start``).

    :param start: the window's start (ISO 8601 with a timezone), or None/empty.
    :param end: the window's end (ISO 8601 with a timezone), or None/empty.
    :param reference: the end of a default window (a scheduled run's data interval end).
    :raises ValueError: an unreadable or naive time, or an empty window (names the field).
    """
    parsed_start = _parse("start", start)
    parsed_end = _parse("end", end)
    if parsed_start is None and parsed_end is None:
        parsed_end = reference
    if parsed_end is None:
        parsed_end = parsed_start + DEFAULT_WINDOW  # type: ignore[operator]
    if parsed_start is None:
        parsed_start = parsed_end - DEFAULT_WINDOW
    _check_window(parsed_start, parsed_end)
    return parsed_start, parsed_end


def _parse(name: str, value: str | None) -> datetime | None:
    if value is None or not str(value).strip():
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} is not an ISO 8601 date-time: {value!r}") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{name} needs a timezone: {value!r}")
    return moment


def reconcile_window(
    deps: PaymentDeps,
    run_id: str,
    start: datetime,
    end: datetime,
    *,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> RunReport:
    """Compare the gateway's charges created in ``[start, end)`` with our store; the report.

    :param deps: the business store and the gateway.
    :param run_id: the run's id (the Airflow run id): a second call with it redoes the run.
    :param start: the window's start (timezone-aware).
    :param end: the window's end, excluded (timezone-aware, after ``start``).
    :param grace: charges younger than this on open or unknown orders are left for next time.
    :param now: the current time (tests); defaults to the clock.
    :raises ValueError: a naive or empty window (the message names the field).
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    _check_window(start, end)
    cutoff = (now or utcnow()) - grace
    with session_scope(deps.engine) as session:
        values = {"run_id": run_id, "window_start": start, "window_end": end, "status": "running"}
        insert_if_absent(session, ReconciliationRunRow.__table__, values)
    charges = deps.gateway.charges_created(start, end)
    succeeded = [charge for charge in charges if charge.status == "succeeded"]
    for charge in succeeded:
        with session_scope(deps.engine) as session:
            for finding in _check_charge(session, deps, charge, cutoff):
                _record(session, run_id, finding)
    listed = {charge.id: charge for charge in charges}
    orders = _check_recorded(deps, run_id, start, end, listed)
    with session_scope(deps.engine) as session:
        _finish(session, run_id, charges=len(succeeded), orders=orders)
        report = read_run(session, run_id)
    log.info(
        "reconciliation %s: %d charges, %d orders, %d findings, %d refunds",
        run_id,
        report.charges_checked,
        report.orders_checked,
        len(report.findings),
        report.refunds_made,
        extra={"correlation_id": run_id},
    )
    return report


def _check_window(start: datetime, end: datetime) -> None:
    for name, moment in (("start", start), ("end", end)):
        if moment.utcoffset() is None:
            raise ValueError(f"{name} needs a timezone: {moment.isoformat()}")
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")


def _check_charge(
    session: Session, deps: PaymentDeps, charge: GatewayCharge, cutoff: datetime
) -> list[Finding]:
    """What one succeeded gateway charge tells about our store (refunding where it must)."""
    young = charge.created_at is not None and charge.created_at > cutoff
    if charge.reference is None:
        return [_flag("charge_without_reference", charge, None, "the charge names no order")]
    order = session.get(OrderRow, charge.reference)
    if order is None:
        return [] if young else _refund_without_order(session, deps, charge)
    if order.status == "failed":
        settlement = money.settle_failed_order(
            session, deps.gateway, order.order_id, recorded="as_found"
        )
        return [
            Finding(
                kind="charge_on_failed_order",
                action="refunded",
                order_id=order.order_id,
                gateway_charge_id=refund.gateway_charge_id,
                gateway_amount=refund.amount,
                refund_id=refund.gateway_refund_id,
                detail=f"order failed ({order.failure_reason or 'no reason'}): refunded",
            )
            for refund in settlement.made
        ]
    recorded = steps.recorded_charge(session, order.order_id)
    if recorded is not None and recorded.gateway_charge_id == charge.id:
        return _amounts(order, recorded.amount, charge)
    if charge.amount_refunded >= charge.amount:
        return []  # refunded in full already: nothing is owed
    if order.status == "completed":
        detail = "a second charge on a completed order (its recorded charge is another)"
        return [_flag("unrecorded_charge", charge, recorded and recorded.amount, detail)]
    if young:
        return []
    detail = f"order is {order.status} with no charge recorded, {charge.created_at} at the gateway"
    return [_flag("charge_on_open_order", charge, None, detail)]


def _refund_without_order(
    session: Session, deps: PaymentDeps, charge: GatewayCharge
) -> list[Finding]:
    try:
        refund = reconcile.refund_charge_without_order(session, deps.gateway, charge)
    except GatewayRejected as exc:
        return [_flag("refund_refused", charge, None, f"no such order; refund refused: {exc}")]
    if refund is None:
        return []
    return [
        Finding(
            kind="charge_without_order",
            action="refunded",
            order_id=charge.reference,
            gateway_charge_id=charge.id,
            gateway_amount=charge.amount,
            refund_id=refund.gateway_refund_id,
            detail=f"no order {charge.reference} in the store: refunded",
        )
    ]


def _amounts(order: OrderRow, recorded: Decimal, charge: GatewayCharge) -> list[Finding]:
    if charge.amount == recorded == order.amount:
        return []
    detail = (
        f"gateway charged {charge.amount}, we recorded {recorded}, the order is for {order.amount}"
    )
    return [_flag("amount_mismatch", charge, recorded, detail)]


def _check_recorded(
    deps: PaymentDeps, run_id: str, start: datetime, end: datetime, listed: dict[str, GatewayCharge]
) -> int:
    """Flag the charges we recorded in the window that the gateway does not know; the number
    of orders checked. A recorded charge listed already was compared above; one created at the
    gateway just outside the window is looked up one by one."""
    with session_scope(deps.engine) as session:
        rows = session.execute(
            select(ChargeRow.order_id, ChargeRow.gateway_charge_id, ChargeRow.amount).where(
                ChargeRow.created_at >= start,
                ChargeRow.created_at < end,
                # a shadow's charge is in the gateway's sandbox ledger, not the live one
                ChargeRow.order_id.not_like(SHADOW_PREFIX + "%"),
            )
        ).all()
    for order_id, charge_id, amount in rows:
        if charge_id in listed:
            continue
        charge = deps.gateway.get_charge(charge_id)
        with session_scope(deps.engine) as session:
            if charge is None:
                finding = Finding(
                    kind="charge_unknown_to_gateway",
                    action="flagged",
                    order_id=order_id,
                    gateway_charge_id=charge_id,
                    store_amount=amount,
                    detail=f"we recorded charge {charge_id} of {amount}; the gateway has none",
                )
                _record(session, run_id, finding)
            elif (order := session.get(OrderRow, order_id)) is not None:
                for finding in _amounts(order, amount, charge):
                    _record(session, run_id, finding)
    return len({order_id for order_id, _, _ in rows})


def _flag(kind: str, charge: GatewayCharge, store_amount: Decimal | None, detail: str) -> Finding:
    return Finding(
        kind=kind,
        action="flagged",
        order_id=charge.reference,
        gateway_charge_id=charge.id,
        gateway_amount=charge.amount,
        store_amount=store_amount,
        detail=detail,
    )


def _record(session: Session, run_id: str, finding: Finding) -> None:
    """Write ``finding`` once per run (a retried run finds it again and writes nothing)."""
    key = f"{finding.kind}:{finding.gateway_charge_id or finding.order_id}"
    values = {"run_id": run_id, "finding_key": key, **finding.model_dump()}
    if insert_if_absent(session, ReconciliationFindingRow.__table__, values):
        log.warning(
            "reconciliation %s: %s %s: %s",
            run_id,
            finding.kind,
            finding.action,
            finding.detail,
            extra={"correlation_id": finding.order_id or run_id, "kind": finding.kind},
        )


def _finish(session: Session, run_id: str, *, charges: int, orders: int) -> None:
    findings = ReconciliationFindingRow
    counts = session.execute(
        select(
            func.count(),
            func.count().filter(findings.action == "refunded"),
        ).where(findings.run_id == run_id)
    ).one()
    session.execute(
        update(ReconciliationRunRow)
        .where(ReconciliationRunRow.run_id == run_id)
        .values(
            status="completed",
            charges_checked=charges,
            orders_checked=orders,
            findings=int(counts[0]),
            refunds_made=int(counts[1]),
            finished_at=utcnow(),
        )
    )

"""The payment workflow's part of an order's timeline (``SEGUE_TIMELINE_SOURCES`` names
:func:`timeline_sources`).

Its own records: the order (accepted, placed, its outcome), the path it was assigned, our
charges and refunds with their idempotency keys and the gateway's ids (and, when asked, the
gateway's own ledger of charge attempts under the order's reference); plus the library's
tables it uses (route decision, saga trail, event log, dead letters), and which DAG run took
the order over, for the Airflow part the library reads itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from include.payments.gateway_client import GatewayClient
from include.payments.order_rows import TERMINAL
from include.payments.routing import (
    BATCH_DAG_OF_PATH,
    DAG_OF_PATH,
    BatchOrderRow,
    OrderRouteRow,
    dag_run_id_for,
)
from include.payments.tables import ChargeRow, OrderPlacementRow, OrderRow, RefundRow
from segue.eventlog.store import EventLogRecord
from segue.store.engine import session_scope
from segue.timeline.model import Entry, TimelineSource
from segue.timeline.sources import library_sources
from segue.timeline.workflow import DagRunRef, WorkflowTimeline


def order_source(engine: Engine) -> TimelineSource:
    """The order: accepted by the intake, recorded, and its outcome (status, failure reason).

    :param engine: the business store.
    """

    def read(order_id: str) -> Sequence[Entry]:
        entries: list[Entry] = []
        with session_scope(engine) as session:
            placement = session.get(OrderPlacementRow, order_id)
            if placement is not None:
                entries.append(
                    Entry(
                        at=placement.created_at,
                        source="orders",
                        kind="placement",
                        title="accepted by the order intake",
                        actor=placement.client,
                    )
                )
            order = session.get(OrderRow, order_id)
            if order is not None:
                entries.append(
                    Entry(
                        at=order.created_at,
                        source="orders",
                        kind="order",
                        title=f"order recorded: {order.amount} {order.currency}",
                        details={"amount": str(order.amount), "currency": order.currency},
                    )
                )
                final = order.status in TERMINAL
                entries.append(
                    Entry(
                        at=order.updated_at,
                        source="orders",
                        kind="outcome" if final else "status",
                        title=f"order {order.status}" + ("" if final else " (not final yet)"),
                        state=order.status,
                        error=order.failure_reason,
                    )
                )
        return entries

    return TimelineSource("orders", read)


def route_source(engine: Engine) -> TimelineSource:
    """The path the order was assigned (``order_routes``) and the DAG run it names.

    :param engine: the business store.
    """

    def read(order_id: str) -> Sequence[Entry]:
        with session_scope(engine) as session:
            row = session.get(OrderRouteRow, order_id)
            if row is None:
                return []
            run = f": DAG run {row.dag_id}/{row.dag_run_id}" if row.dag_id else ""
            return [
                Entry(
                    at=row.created_at,
                    source="orders",
                    kind="path",
                    title=f"assigned to path {row.path}{run}",
                    state=row.path,
                    details={"path": row.path, "dag_id": row.dag_id, "run_id": row.dag_run_id},
                )
            ]

    return TimelineSource("order_routes", read)


def payment_source(engine: Engine) -> TimelineSource:
    """Our charges and refunds at the gateway: idempotency keys, the gateway's ids, amounts.

    :param engine: the business store.
    """

    def read(order_id: str) -> Sequence[Entry]:
        with session_scope(engine) as session:
            charges = session.scalars(
                select(ChargeRow).where(ChargeRow.order_id == order_id).order_by(ChargeRow.id)
            ).all()
            refunds = session.scalars(
                select(RefundRow).where(RefundRow.order_id == order_id).order_by(RefundRow.id)
            ).all()
        entries = [
            Entry(
                at=charge.created_at,
                source="gateway",
                kind="charge",
                title=f"charged {charge.amount} {charge.currency}: {charge.gateway_charge_id}",
                details={
                    "idempotency_key": charge.idempotency_key,
                    "gateway_charge_id": charge.gateway_charge_id,
                    "amount": str(charge.amount),
                    "currency": charge.currency,
                },
            )
            for charge in charges
        ]
        entries += [
            Entry(
                at=refund.created_at,
                source="gateway",
                kind="refund",
                title=f"refunded {refund.amount} of {refund.gateway_charge_id}: "
                f"{refund.gateway_refund_id}",
                details={
                    "idempotency_key": refund.idempotency_key,
                    "gateway_refund_id": refund.gateway_refund_id,
                    "gateway_charge_id": refund.gateway_charge_id,
                    "amount": str(refund.amount),
                },
            )
            for refund in refunds
        ]
        return entries

    return TimelineSource("payments", read)


def ledger_source(gateway: GatewayClient) -> TimelineSource:
    """The gateway's own ledger: every charge attempt under the order's reference, declined
    ones and ones our side never recorded (a lost answer) included.

    :param gateway: the gateway's client (its calls raise when it is down: a missing part).
    """

    def read(order_id: str) -> Sequence[Entry]:
        return [
            Entry(
                at=charge.created_at,
                source="gateway ledger",
                kind="gateway charge",
                title=f"gateway charge {charge.id}: {charge.amount} {charge.currency}",
                state=charge.status,
                details={
                    "gateway_charge_id": charge.id,
                    "amount": str(charge.amount),
                    "amount_refunded": str(charge.amount_refunded),
                },
            )
            for charge in gateway.list_charges(reference=order_id)
        ]

    return TimelineSource("gateway ledger", read)


def dag_runs_of(engine: Engine, order_id: str) -> list[DagRunRef]:
    """The DAG run that took the order over: the one its route names, or for a front-door order
    of a batched DAG the batch runs that took it (a transient failure resumes it in a later
    one); for an order recorded
    without a route and without events (triggered directly, not through the front door), the
    run each DAG would have under ``order__<id>`` and the runs whose conf names the order
    (triggered by hand, from the UI's form).

    :param engine: the business store.
    :param order_id: the order.
    """
    with session_scope(engine) as session:
        route = session.get(OrderRouteRow, order_id)
        if route is not None and route.dag_id in BATCH_DAG_OF_PATH.values():
            queued = session.get(BatchOrderRow, order_id)  # the batch runs that took it, in turn
            runs = queued.runs.split() if queued is not None else []
            return [DagRunRef(dag_id=route.dag_id, run_id=run_id) for run_id in runs]
        if route is not None:
            if route.dag_id and route.dag_run_id:
                return [DagRunRef(dag_id=route.dag_id, run_id=route.dag_run_id)]
            return []
        if session.get(OrderRow, order_id) is None or _on_the_event_path(session, order_id):
            return []
    run_id, conf = dag_run_id_for(order_id), {"order_id": order_id}
    return [
        ref
        for dag in DAG_OF_PATH.values()
        for ref in (
            DagRunRef(dag_id=dag, run_id=run_id, expected=False),
            DagRunRef(dag_id=dag, conf=conf, expected=False),
        )
    ]


def _on_the_event_path(session: Session, order_id: str) -> bool:
    """True when the intake accepted the order or the event log holds its events."""
    if session.get(OrderPlacementRow, order_id) is not None:
        return True
    logged = select(EventLogRecord.id).where(EventLogRecord.correlation_id == order_id).limit(1)
    return session.scalar(logged) is not None


def timeline_sources(engine: Engine, gateway: GatewayClient | None = None) -> WorkflowTimeline:
    """Every source of a payment order's timeline, and its DAG runs.

    :param engine: the business store.
    :param gateway: also read the gateway's ledger through this client (default: not).
    """
    ledger = (ledger_source(gateway),) if gateway is not None else ()
    return WorkflowTimeline(
        sources=(
            *library_sources(engine),
            route_source(engine),
            order_source(engine),
            payment_source(engine),
            *ledger,
        ),
        dag_runs=lambda order_id: dag_runs_of(engine, order_id),
    )

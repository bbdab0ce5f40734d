"""Which path each order takes, kept per order (component ``include.payments.routing``).

The front door routes an order to the choreography (``events``) or to one of the Airflow paths
(``dag``, ``saga``, ``hybrid``), each one DAG. The assignment is written once, in the
placement's transaction, and never changes afterwards: the same order placed again keeps its
first path even if the router would now pick another (a changed rollout percentage must not
run an order twice on two paths). The DAG run that takes an order over has an id derived from
the order id, so every hand-over of the same order names the same run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Any, Literal, get_args

from sqlalchemy import JSON, DateTime, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from segue.migrations import Component
from segue.store.engine import new_metadata, utcnow
from segue.store.inserts import insert_if_absent

OrderPath = Literal["events", "dag", "saga", "hybrid"]
DagPath = Literal["dag", "saga", "hybrid"]
ORDER_PATHS: tuple[str, ...] = get_args(OrderPath)
EVENTS: OrderPath = "events"

# The DAG each Airflow path runs (dags/payment_pipeline.py, payment_state_machine.py, ...).
DAG_OF_PATH: dict[str, str] = {
    "dag": "payment_pipeline",
    "saga": "payment_state_machine",
    "hybrid": "payment_hybrid",
}
# The batched DAG of a path, for orders that come through the front door with
# ``SEGUE_FRONT_DOOR_BATCH`` on (dags/payment_pipeline_batch.py, payment_state_machine_batch.py).
BATCH_DAG_OF_PATH: dict[str, str] = {
    "dag": "payment_pipeline_batch",
    "saga": "payment_state_machine_batch",
}
RUN_ID_PREFIX = "order__"


class UnknownPath(ValueError):
    """A path that is none of ORDER_PATHS (names the value and the choices)."""

    def __init__(self, path: object) -> None:
        super().__init__(f"path: {path!r} is not one of {', '.join(ORDER_PATHS)}")
        self.field = "path"


def check_path(path: object) -> OrderPath:
    """``path`` if it is a known path, else UnknownPath.

    :param path: the value to check (from a router, a setting or a request).
    """
    if path not in ORDER_PATHS:
        raise UnknownPath(path)
    return path  # type: ignore[return-value]


def dag_run_id_for(order_id: str) -> str:
    """The id of the one DAG run that takes ``order_id`` over: the same on every hand-over.

    :param order_id: the order's id (its pattern fits Airflow's run id pattern).
    """
    return RUN_ID_PREFIX + order_id


class RoutingBase(DeclarativeBase):
    """Declarative base of the routing table (its own metadata and migrations)."""

    metadata = new_metadata()


class OrderRouteRow(RoutingBase):
    """The path an order was assigned when it was first placed (one row per order, kept)."""

    __tablename__ = "order_routes"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(16))
    dag_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    dag_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


QUEUED, CLAIMED, DONE, FAILED = "queued", "claimed", "done", "failed"
FIRST_STEP = "validate"


class BatchOrderRow(RoutingBase):
    """One front-door order waiting for, or taken by, a batched DAG run (the batch queue;
    ``include.payments.batch_queue`` reads and writes it)."""

    __tablename__ = "batch_orders"
    __table_args__ = (Index("ix_batch_orders_ready", "dag_id", "state", "not_before"),)

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    next_step: Mapped[str] = mapped_column(String(32), default=FIRST_STEP)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(250), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    runs: Mapped[str] = mapped_column(String(4000), default="")
    outcome: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


COMPONENT = Component(
    name="include.payments.routing",
    metadata=RoutingBase.metadata,
    script_location=FilePath(__file__).with_name("migrations") / "routing",
    version_table="alembic_version_payment_routing",
)


def batched(path: str, batch: bool) -> bool:
    """True when an order on ``path`` goes to its path's batched DAG.

    :param path: the order's path.
    :param batch: the front door's batching switch (``SEGUE_FRONT_DOOR_BATCH``).
    """
    return batch and path in BATCH_DAG_OF_PATH


def record_route(session: Session, order_id: str, path: OrderPath, *, batch: bool = False) -> bool:
    """Assign ``path`` to ``order_id`` unless it has a path already; True if assigned now.

    :param session: the placement's transaction (the row commits or rolls back with it).
    :param order_id: the order.
    :param path: the path the router picked.
    :param batch: the order goes to its path's batched DAG (its run is known once claimed,
        in ``batch_orders``), not to a run of its own.
    """
    path = check_path(path)
    if batched(path, batch):
        dag_id, run_id = BATCH_DAG_OF_PATH[path], None
    else:
        dag_id = DAG_OF_PATH.get(path)
        run_id = dag_run_id_for(order_id) if dag_id else None
    row = {
        "order_id": order_id,
        "path": path,
        "dag_id": dag_id,
        "dag_run_id": run_id,
        "created_at": utcnow(),
    }
    return insert_if_absent(session, OrderRouteRow.__table__, row)


def route_of(session: Session, order_id: str) -> OrderRouteRow | None:
    """The route recorded for ``order_id``, or None (placed before routing existed, or never).

    :param session: an open session.
    :param order_id: the order.
    """
    return session.get(OrderRouteRow, order_id)

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
from typing import Literal, get_args

from sqlalchemy import DateTime, String
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


COMPONENT = Component(
    name="include.payments.routing",
    metadata=RoutingBase.metadata,
    script_location=FilePath(__file__).with_name("migrations") / "routing",
    version_table="alembic_version_payment_routing",
)


def record_route(session: Session, order_id: str, path: OrderPath) -> bool:
    """Assign ``path`` to ``order_id`` unless it has a path already; True if assigned now.

    :param session: the placement's transaction (the row commits or rolls back with it).
    :param order_id: the order.
    :param path: the path the router picked.
    """
    path = check_path(path)
    dag_id = DAG_OF_PATH.get(path)
    row = {
        "order_id": order_id,
        "path": path,
        "dag_id": dag_id,
        "dag_run_id": dag_run_id_for(order_id) if dag_id else None,
        "created_at": utcnow(),
    }
    return insert_if_absent(session, OrderRouteRow.__table__, row)


def route_of(session: Session, order_id: str) -> OrderRouteRow | None:
    """The route recorded for ``order_id``, or None (placed before routing existed, or never).

    :param session: an open session.
    :param order_id: the order.
    """
    return session.get(OrderRouteRow, order_id)

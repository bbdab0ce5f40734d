"""Order intake: records an order's first event in the outbox, in the caller's transaction,
once per order id, with the path the order takes.

On the event path (``events``) that event is OrderPlaced, which the choreography reacts to. On
an Airflow path (``dag``, ``saga``, ``hybrid``) it is OrderRouted, naming the DAG and the one
run id that takes the order over; the ``airflow-handover`` service triggers that run. The
outbox makes acceptance and hand-over atomic: an order is accepted exactly when its event will
be published.

The event id is derived from the order id, so placing the same order again is absorbed. What
was placed under an id is kept in ``order_placements`` and the path in ``order_routes`` (both
written in the same transaction), so a different order under an id already used is always
rejected with InvalidOrder, however long ago the first one was placed, and the same order
placed again keeps its first path whatever the router says now.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session

from include.payments.batch_queue import enqueue
from include.payments.errors import InvalidOrder
from include.payments.events import OrderPlaced, OrderRouted
from include.payments.models import Order
from include.payments.order_form import conf_for
from include.payments.routing import (
    BATCH_DAG_OF_PATH,
    DAG_OF_PATH,
    EVENTS,
    OrderPath,
    batched,
    check_path,
    dag_run_id_for,
    record_route,
    route_of,
)
from include.payments.tables import OrderPlacementRow
from segue import tracing
from segue.bus.outbox import add_to_outbox
from segue.events.envelope import Envelope
from segue.events.payload import EventPayload
from segue.store.inserts import insert_if_absent

SOURCE = "intake"
Mirror = Callable[[Session, Order, str], bool]
"""Mirrors a new order to a shadow path in its placement's transaction (``shadow_mirror``)."""
logger = logging.getLogger(__name__)


def order_placed_id(order_id: str) -> str:
    """The event id of an order's OrderPlaced: the same every time the order is placed."""
    return _event_id(order_id, OrderPlaced.event_type)


def order_routed_id(order_id: str) -> str:
    """The event id of an order's OrderRouted: the same every time the order is placed.

    :param order_id: the order.
    """
    return _event_id(order_id, OrderRouted.event_type)


def _event_id(order_id: str, event_type: str) -> str:
    name = f"segue:{SOURCE}/{order_id}/{event_type}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def first_event(order: Order, path: OrderPath, *, batch: bool = False) -> Envelope:
    """The event that starts ``order`` on ``path``: OrderPlaced, or OrderRouted to its DAG.

    :param order: the order.
    :param path: the path it takes.
    :param batch: the order waits in the batch queue for its path's batched DAG (the run is
        not known yet: ``dag_run_id`` is empty, and the event is not published).
    """
    payload: EventPayload
    if path == EVENTS:
        payload, event_id = OrderPlaced(order=order), order_placed_id(order.order_id)
    else:
        payload = OrderRouted(
            order=order,
            path=path,
            dag_id=BATCH_DAG_OF_PATH[path] if batched(path, batch) else DAG_OF_PATH[path],
            dag_run_id="" if batched(path, batch) else dag_run_id_for(order.order_id),
        )
        event_id = order_routed_id(order.order_id)
    return Envelope.create(payload, source=SOURCE, subject=order.order_id, event_id=event_id)


def place_order(
    session: Session,
    order: Order,
    path: OrderPath = EVENTS,
    *,
    client: str,
    mirror: Mirror | None = None,
    batch: bool = False,
) -> Envelope:
    """Queue the first event of ``order`` on ``path`` (idempotent per order id); its envelope.

    Placing the same order again returns the envelope of its first placement's path (same id;
    ``time`` is of this call) and queues nothing new. Raises InvalidOrder when the id belongs
    to another order, UnknownPath for a path that does not exist. The placement row records
    ``client``; a repeat keeps the first placement's client.

    :param session: the caller's transaction; the placement, route and event commit with it.
    :param order: the order.
    :param path: the path the router picked (kept only if the order is new).
    :param client: the API client placing it (the name its key belongs to).
    :param mirror: called once for a new order, to place its shadow (never fails the order).
    :param batch: a ``dag`` or ``saga`` order waits in the batch queue (``batch_orders``,
        written here) for its path's batched DAG instead of being handed over (no OrderRouted
        is published: the queue row is the hand-over).
    """
    path = check_path(path)
    placement = {
        "order_id": order.order_id,
        "payload": order.model_dump(mode="json"),
        "client": client,
    }
    if insert_if_absent(session, OrderPlacementRow.__table__, placement):
        record_route(session, order.order_id, path, batch=batch)
        with tracing.order_root(order.order_id, "order placed", {"segue.path": path}):
            # its traceparent names the order's root span
            envelope = first_event(order, path, batch=batch)
        if batched(path, batch):
            enqueue(session, order.order_id, BATCH_DAG_OF_PATH[path], conf_for(order))
        else:
            add_to_outbox(session, envelope)
        if mirror is not None:
            mirror(session, order, path)
        logger.info(
            "order %s placed on %s by %s",
            order.order_id,
            path,
            client,
            extra={**_log(envelope, path), "client": client},
        )
        return envelope
    earlier = session.get(OrderPlacementRow, order.order_id)
    if earlier is None or Order.model_validate(earlier.payload) != order:
        raise InvalidOrder("order_id", f"{order.order_id!r} was already used for another order")
    kept = path_of(session, order.order_id)
    route = route_of(session, order.order_id)
    was_batched = route is not None and route.dag_id in BATCH_DAG_OF_PATH.values()
    envelope = first_event(order, kept, batch=was_batched)
    logger.info(
        "order %s placed again: absorbed (path %s kept)",
        order.order_id,
        kept,
        extra=_log(envelope, kept),
    )
    return envelope


def path_of(session: Session, order_id: str) -> OrderPath:
    """The path of a placed order; ``events`` for one placed before paths were recorded.

    :param session: an open session.
    :param order_id: a placed order's id.
    """
    route = route_of(session, order_id)
    return EVENTS if route is None else check_path(route.path)


def path_of_event(envelope: Envelope) -> OrderPath:
    """The path an order's first event starts it on (``place_order``'s answer tells it).

    :param envelope: an OrderPlaced (the event path) or an OrderRouted (its DAG's path).
    """
    data = envelope.data
    return check_path(data.path) if isinstance(data, OrderRouted) else EVENTS


def _log(envelope: Envelope, path: str) -> dict[str, str]:
    return {**envelope.log_context(), "path": path}

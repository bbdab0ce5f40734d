"""Order intake: records OrderPlaced in the outbox, in the caller's transaction, once per order id.

The event id is derived from the order id, so placing the same order again is absorbed. What
was placed under an id is kept in ``order_placements`` (written in the same transaction), so a
different order under an id already used is always rejected with InvalidOrder, however long
ago the first one was placed.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.orm import Session

from include.payments.errors import InvalidOrder
from include.payments.events import OrderPlaced
from include.payments.models import Order
from include.payments.tables import OrderPlacementRow
from segue.bus.outbox import add_to_outbox
from segue.events.envelope import Envelope
from segue.store.inserts import insert_if_absent

SOURCE = "intake"
logger = logging.getLogger(__name__)


def order_placed_id(order_id: str) -> str:
    """The event id of an order's OrderPlaced: the same every time the order is placed."""
    name = f"segue:{SOURCE}/{order_id}/{OrderPlaced.event_type}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def place_order(session: Session, order: Order, *, client: str) -> Envelope:
    """Queue OrderPlaced for ``order`` (idempotent per order id); returns its envelope.

    Placing the same order again returns an envelope with the same id (``time`` is of this
    call) and queues nothing new. Raises InvalidOrder when the id belongs to another order.
    The placement row records ``client``; a repeat keeps the first placement's client.

    :param session: the business store's session (the caller commits).
    :param order: the order to place.
    :param client: the API client placing it (the name its key belongs to).
    """
    envelope = Envelope.create(
        OrderPlaced(order=order),
        source=SOURCE,
        subject=order.order_id,
        event_id=order_placed_id(order.order_id),
    )
    placement = {
        "order_id": order.order_id,
        "payload": order.model_dump(mode="json"),
        "client": client,
    }
    if insert_if_absent(session, OrderPlacementRow.__table__, placement):
        add_to_outbox(session, envelope)
        logger.info(
            "order %s placed by %s",
            order.order_id,
            client,
            extra={**envelope.log_context(), "client": client},
        )
        return envelope
    earlier = session.get(OrderPlacementRow, order.order_id)
    if earlier is None or Order.model_validate(earlier.payload) != order:
        raise InvalidOrder("order_id", f"{order.order_id!r} was already used for another order")
    logger.info("order %s placed again: absorbed", order.order_id, extra=envelope.log_context())
    return envelope

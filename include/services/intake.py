"""Order intake: records OrderPlaced in the outbox, in the caller's transaction, once per order id.

The event id is derived from the order id, so placing the same order again is absorbed. A
different order under an id already used is rejected with InvalidOrder. What was placed under
an id is known from the order row (once validation ran) or from the outbox row (until the relay
published it); in the short window between the two it cannot be checked here, and the second
placement then carries the same event id, which the consumers' inbox drops.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from include.payments.errors import InvalidOrder
from include.payments.events import OrderPlaced
from include.payments.models import Order
from include.payments.tables import OrderRow
from segue.bus.outbox import OutboxRow, add_to_outbox
from segue.events.envelope import Envelope

SOURCE = "intake"
logger = logging.getLogger(__name__)


def order_placed_id(order_id: str) -> str:
    """The event id of an order's OrderPlaced: the same every time the order is placed."""
    name = f"segue:{SOURCE}/{order_id}/{OrderPlaced.event_type}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def place_order(session: Session, order: Order) -> Envelope:
    """Queue OrderPlaced for ``order`` (idempotent per order id); returns its envelope.

    Placing the same order again returns an envelope with the same id (``time`` is of this
    call) and queues nothing new. Raises InvalidOrder when the id belongs to another order.
    """
    envelope = Envelope.create(
        OrderPlaced(order=order),
        source=SOURCE,
        subject=order.order_id,
        event_id=order_placed_id(order.order_id),
    )
    earlier = _placed_under(session, order.order_id, envelope.id)
    if earlier is None:
        if add_to_outbox(session, envelope):
            logger.info("order %s placed", order.order_id, extra=envelope.log_context())
            return envelope
        # A concurrent placement of the same id committed first: compare with it.
        earlier = _placed_under(session, order.order_id, envelope.id)
    if earlier is not None and earlier != order:
        raise InvalidOrder("order_id", f"{order.order_id!r} was already used for another order")
    logger.info("order %s placed again: absorbed", order.order_id, extra=envelope.log_context())
    return envelope


def _placed_under(session: Session, order_id: str, event_id: str) -> Order | None:
    """The order already placed under ``order_id``, if it can still be seen."""
    row = session.get(OrderRow, order_id)
    if row is not None:
        return Order.model_validate(row.payload)
    body = session.scalar(select(OutboxRow.body).where(OutboxRow.event_id == event_id))
    if body is not None:
        return OrderPlaced.model_validate_json(body).order
    return None

"""Mirroring at the front door: a share of new orders is copied to the candidate path.

Called in the transaction that accepts the real order, after its route decision: when the
shadow switch (``segue.rollout.shadow``) is on and the order's bucket (the split's own, so the
choice is sticky) falls in its share, the shadow (``include.payments.shadow``) is recorded in
``shadow_orders`` and its OrderPlaced added to the outbox, in a savepoint. Like the real order's
first event it is at-least-once (the relay publishes it; a redelivery is absorbed), and it never
blocks or fails the real order: if it cannot be placed, the savepoint rolls back, the failure is
logged and counted (``failed``), and the real order goes on. Orders the split already sends to
the candidate are not mirrored. The candidate is the event path: that is where teams migrate to.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from include.payments.events import OrderPlaced
from include.payments.models import Order
from include.payments.routing import EVENTS
from include.payments.shadow import ShadowOrderRow, shadow_order
from include.services.intake import SOURCE, order_placed_id
from segue.bus.outbox import add_to_outbox
from segue.events.envelope import Envelope
from segue.rollout import decision_of
from segue.rollout.shadow import ShadowSetting, ShadowSwitch
from segue.store.inserts import insert_if_absent

CANDIDATES = (EVENTS,)
"""The paths a shadow can run on: the event path (its handlers run with effects stubbed)."""
logger = logging.getLogger(__name__)


def shadow_placed_id(shadow_order_id: str) -> str:
    """The event id of a shadow's OrderPlaced: the same every time the real order is placed
    (derived from the shadow's id, which no real order can have).

    :param shadow_order_id: the shadow's id.
    """
    return order_placed_id(shadow_order_id)


def place_shadow(session: Session, order: Order, real_path: str, setting: ShadowSetting) -> bool:
    """Record ``order``'s shadow and queue its OrderPlaced, once; False if already placed.

    :param session: the real order's transaction (the caller wraps this in a savepoint).
    :param order: the real order.
    :param real_path: the path the real order takes.
    :param setting: the shadow setting in force (its path and version are recorded).
    """
    if setting.path not in CANDIDATES:
        raise ValueError(f"shadow path {setting.path!r}: only {', '.join(CANDIDATES)} can shadow")
    shadow = shadow_order(order)
    row = {
        "order_id": order.order_id,
        "shadow_order_id": shadow.order_id,
        "real_path": real_path,
        "shadow_path": setting.path,
        "setting_version": setting.version,
    }
    if not insert_if_absent(session, ShadowOrderRow.__table__, row):
        return False
    envelope = Envelope.create(
        OrderPlaced(order=shadow),
        source=SOURCE,  # the intake's: its relay publishes only its own source's outbox rows
        subject=shadow.order_id,
        event_id=shadow_placed_id(shadow.order_id),
    )
    add_to_outbox(session, envelope)
    return True


class ShadowMirror:
    """The front door's mirror: decides per new order and places shadows; counts both outcomes.

    :param switch: the shadow setting in force, polled (``ShadowSwitch``).
    """

    def __init__(self, switch: ShadowSwitch) -> None:
        self.switch = switch
        self._lock = threading.Lock()
        self.placed = 0
        self.failed = 0

    @classmethod
    def over(cls, engine: Engine, flag_name: str) -> ShadowMirror:
        """A mirror reading ``flag_name``'s shadow setting from ``engine``.

        :param engine: the business store.
        :param flag_name: the split's flag.
        """
        return cls(ShadowSwitch(engine, flag_name))

    def __call__(self, session: Session, order: Order, path: str) -> bool:
        """Mirror the new ``order`` (on ``path``) if the switch says so; True when placed.

        :param session: the transaction accepting the real order (its route decision written).
        :param order: the real order.
        :param path: the path the real order takes.
        """
        try:
            setting = self.switch.current()
            if not setting.on or path == setting.path:
                return False
            with session.begin_nested():  # whatever fails in here, the real order's stays
                decision = decision_of(session, order.order_id)
                if decision is None or not setting.mirrors(decision.bucket):
                    return False
                placed = place_shadow(session, order, path, setting)
        except Exception:  # a shadow must never fail the real order
            logger.exception(
                "order %s: shadow not placed; the real order goes on",
                order.order_id,
                extra={"correlation_id": order.order_id},
            )
            with self._lock:
                self.failed += 1
            return False
        with self._lock:
            self.placed += int(placed)
        return placed

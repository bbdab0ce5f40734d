"""Shadow orders: a real order's copy run by a candidate path with every side effect stubbed.

A shadow has its own id (``shadow.<order id>``; a hash for an id too long to prefix), so its
rows, event ids and idempotency keys (``shadow.<id>:charge``) never collide with the real
order's; the front door refuses real order ids in the ``shadow.`` namespace. The candidate runs
the same handlers and steps as for a real order; only the effects differ, decided here by the
order id (component ``include.payments.shadow``):

- the gateway is called in sandbox mode (:func:`effects_gateway`): decided as a live charge,
  recorded in the gateway's separate ledger, no money moved; ``charges``/``refunds`` rows of a
  shadow name that sandbox charge (``ch_sbx_…``) and reconciliation leaves them out;
- stock is checked but neither locked nor taken (``inventory_steps``); a shadow's
  ``reservations`` rows are its own bookkeeping of what it would have held;
- receipts and shipping notices go to ``shadow_receipts`` / ``shadow_shipping_notices``, never
  to the tables a real receipt or notice is sent from.

``shadow_orders`` pairs each real order with its shadow, for the comparator.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.tables import MONEY
from segue.migrations import Component
from segue.store.engine import new_metadata, utcnow

SHADOW_PREFIX = "shadow."
_MAX_ID = 64


def shadow_id(order_id: str) -> str:
    """The id of ``order_id``'s shadow: the same every time, never a real order's id.

    :param order_id: the real order's id.
    """
    if len(SHADOW_PREFIX) + len(order_id) <= _MAX_ID:
        return SHADOW_PREFIX + order_id
    digest = hashlib.sha256(order_id.encode()).hexdigest()
    return (SHADOW_PREFIX + "h" + digest)[:_MAX_ID]


def is_shadow(order_id: str) -> bool:
    """True for a shadow order's id (real order ids are refused in this namespace).

    :param order_id: any order id.
    """
    return order_id.startswith(SHADOW_PREFIX)


def shadow_order(order: Order) -> Order:
    """The shadow copy of ``order``: the same order under its shadow id.

    :param order: the real order.
    """
    return Order.model_validate({**order.model_dump(), "order_id": shadow_id(order.order_id)})


def effects_gateway(gateway: GatewayClient, order_id: str) -> GatewayClient:
    """The gateway a step charges or refunds ``order_id`` through: the sandbox for a shadow.

    :param gateway: the live client the caller holds.
    :param order_id: the order the call is for.
    """
    return gateway.sandbox() if is_shadow(order_id) else gateway


class ShadowBase(DeclarativeBase):
    """Declarative base of the shadow tables (component ``include.payments.shadow``)."""

    metadata = new_metadata()


class ShadowOrderRow(ShadowBase):
    """A real order mirrored to a candidate path: written once, in the real order's placement."""

    __tablename__ = "shadow_orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shadow_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    real_path: Mapped[str] = mapped_column(String(16))
    shadow_path: Mapped[str] = mapped_column(String(16))
    setting_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ShadowReceiptRow(ShadowBase):
    """The receipt a shadow order would have sent (recorded, never sent)."""

    __tablename__ = "shadow_receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ShadowShippingNoticeRow(ShadowBase):
    """The shipping notice a shadow order would have sent (recorded, never sent)."""

    __tablename__ = "shadow_shipping_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


COMPONENT = Component(
    name="include.payments.shadow",
    metadata=ShadowBase.metadata,
    script_location=Path(__file__).with_name("migrations") / "shadow",
    version_table="alembic_version_payment_shadow",
)

"""The payment workflow as five transactional steps, for orchestrators that call them in order.

Each function runs one step in its own transaction and returns JSON-safe data (Airflow XCom).
The linear DAG calls these; the saga and event paths call the same functions in ``steps``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from include.payments import reconcile, steps
from include.payments.database import payments_engine
from include.payments.errors import OrderNotFound, PaymentError
from include.payments.gateway_client import GatewayClient
from include.payments.settings import PaymentSettings, get_payment_settings
from segue.settings import get_settings
from segue.store.engine import session_scope

log = logging.getLogger(__name__)

STEP_NAMES = ("validate", "charge", "update_inventory", "send_receipt", "notify_shipping")


@dataclass(frozen=True)
class PaymentDeps:
    """What the steps need from the outside world: the business store and the gateway."""

    engine: Engine
    gateway: GatewayClient

    @classmethod
    def from_settings(cls, settings: PaymentSettings, database_url: str) -> PaymentDeps:
        """The business store at ``database_url`` and a gateway client from ``settings``."""
        return cls(
            engine=payments_engine(database_url),
            gateway=GatewayClient(
                settings.gateway_url, timeout_seconds=settings.gateway_timeout_seconds
            ),
        )


@lru_cache(maxsize=1)
def default_deps() -> PaymentDeps:
    """The dependencies of this process, built once from its settings."""
    return PaymentDeps.from_settings(get_payment_settings(), get_settings().database_url)


def order_id_for_run(run_id: str) -> str:
    """A stable order id for a run that was triggered without one (same on every retry)."""
    return "ord-" + hashlib.sha256(run_id.encode()).hexdigest()[:20]


def validate(deps: PaymentDeps, data: Mapping[str, Any]) -> str:
    with session_scope(deps.engine) as session:
        return steps.validate_order(session, data).order_id


def charge(deps: PaymentDeps, order_id: str) -> dict[str, Any]:
    with session_scope(deps.engine) as session:
        return steps.charge_card(session, deps.gateway, order_id).model_dump(mode="json")


def update_inventory(deps: PaymentDeps, order_id: str) -> list[dict[str, Any]]:
    with session_scope(deps.engine) as session:
        return steps.update_inventory(session, order_id)


def send_receipt(deps: PaymentDeps, order_id: str) -> str:
    with session_scope(deps.engine) as session:
        return steps.send_receipt(session, order_id)


def notify_shipping(deps: PaymentDeps, order_id: str) -> dict[str, Any]:
    with session_scope(deps.engine) as session:
        return steps.notify_shipping(session, order_id)


def order_payload(deps: PaymentDeps, order_id: str) -> dict[str, Any]:
    """The recorded order with its card masked, for a dead-letter record."""
    with session_scope(deps.engine) as session:
        try:
            return steps.load_order(session, order_id).public_payload()
        except OrderNotFound:
            return {"order_id": order_id}


def fail_and_reconcile_on_abandon(
    deps: PaymentDeps, order_id: str, *, undo_charge: bool = False
) -> Callable[[Session, str], object]:
    """The ``on_abandon`` hook of every DAG step: fail the order with the reason, then refund
    what the gateway charged that was never recorded.

    A charge step that ran out of retries on timeouts may have charged at the gateway every
    time it lost the answer (one charge: the key is the same). With ``undo_charge`` (the
    charge step itself was abandoned, e.g. its reply never came in time) a recorded charge is
    refunded too; otherwise the linear path leaves a recorded charge to a human (it has no
    compensation). The refund is best effort, in a savepoint: if the gateway is unreachable the
    order stays failed with its dead letter, and ``reconcile_failed_order`` can be run later.
    """

    def abandon(session: Session, reason: str) -> None:
        steps.fail_order(session, order_id, reason)
        recorded = steps.recorded_charge(session, order_id) is not None
        if recorded and not undo_charge:
            return
        try:
            with session.begin_nested():
                if recorded:
                    steps.refund_charge(session, deps.gateway, order_id)
                else:
                    reconcile.refund_unrecorded_charges(session, deps.gateway, order_id)
        except PaymentError as exc:
            log.warning(
                "order %s: gateway not reconciled after the abandon: %s",
                order_id,
                exc,
                extra={"correlation_id": order_id},
            )

    return abandon


def reconcile_failed_order(deps: PaymentDeps, order_id: str) -> list[dict[str, Any]]:
    """Refund a failed order's unrecorded gateway charges now (a no-op for other orders)."""
    with session_scope(deps.engine) as session:
        refunds = reconcile.refund_unrecorded_charges(session, deps.gateway, order_id)
        return [refund.model_dump(mode="json") for refund in refunds]

"""The traffic split at the front door: each new order's path from the ``route`` feature flag.

``flag_router`` is the intake's router: it evaluates the flag (``segue.rollout``, through
OpenFeature) with the order's attributes and stores the decision in the transaction that
accepts the order, so an order re-posted later keeps its path whatever the split says by then.
``route_everything_to`` is how tests, benchmarks and scripts pin the split (an audited version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from include.payments.models import Order
from include.payments.routing import OrderPath
from include.workflow import ROLLOUT_BASELINE, ROLLOUT_FLAG, ROLLOUT_PATHS
from segue.rollout import FlagSpec, FlagVersion, decide, set_split
from segue.store.engine import session_scope

PAYMENT_FLAG = FlagSpec(name=ROLLOUT_FLAG, paths=ROLLOUT_PATHS, baseline=ROLLOUT_BASELINE)
"""The payment workflow's flag: the four execution paths, ``dag`` the baseline."""

Router = Callable[[Session, Order], OrderPath]


def order_context(order: Order) -> dict[str, Any]:
    """The attributes the split's rules and sticky key may read (no card data).

    :param order: the order being placed.
    """
    return {
        "order_id": order.order_id,
        "customer_email": str(order.customer_email),
        "amount": str(order.amount),
        "currency": order.currency,
        "country": order.shipping_address.country,
        "items": len(order.items),
    }


def flag_router(flag: FlagSpec = PAYMENT_FLAG) -> Router:
    """The router that asks ``flag`` for each new order's path and stores the decision.

    :param flag: the flag to evaluate (default: the payment workflow's).
    """

    def route(session: Session, order: Order) -> OrderPath:
        return decide(session, flag, order.order_id, order_context(order)).path  # type: ignore[return-value]

    return route


def route_everything_to(
    engine: Engine, path: str, *, actor: str, reason: str, flag: FlagSpec = PAYMENT_FLAG
) -> FlagVersion:
    """Write a new version of the split that sends every new order to ``path``.

    :param engine: the business store.
    :param path: one of the flag's paths.
    :param actor: who asks (recorded in the flag's history).
    :param reason: why (recorded).
    :param flag: the flag (default: the payment workflow's).
    """
    with session_scope(engine) as session:
        return set_split(
            session, flag, {"weights": {path: 100}, "baseline": flag.baseline}, actor, reason
        )

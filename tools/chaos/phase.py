"""Drive orders through a stack's front door onto one path, and a fault phase with its verdict.

Orders reach a chosen path through the routing flag itself: for the run, the flag gets one
targeting rule per path (``customer_email == segue-compare+<path>@example.com``) ahead of its
own rules, and the version in force before is written back afterwards. Other traffic keeps its
split; every change is an audited flag version like any other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine, select

from include.payments.order_rows import TERMINAL
from include.payments.tables import OrderRow
from include.services.front_door import PAYMENT_FLAG
from segue.rollout import current, set_split
from segue.store.engine import session_scope
from tools.chaos.faults import FAULTS, NotApplicable
from tools.chaos.invariants import settled_violations
from tools.chaos.orders import order_body, order_mix
from tools.chaos.stack import Stack, StackError

FLAG_PROPAGATION_SECONDS = 1.0  # front doors poll the flag at most every 0.25 s
# A failed order's refund follows its terminal status; on a loaded machine's Airflow by minutes.
SETTLE_SECONDS = 120.0


def email_of(path: str) -> str:
    """The customer email the run's rule sends to ``path``."""
    return f"segue-compare+{path}@example.com"


@contextmanager
def routed_by_email(engine: Engine, paths: Sequence[str], actor: str) -> Iterator[None]:
    """For the block, orders with :func:`email_of` a path go to that path.

    :param engine: the business store holding the flag.
    :param paths: the paths to reach.
    :param actor: who changes the flag (recorded with the reason).
    :raises StackError: when the kill switch is on (rules would not apply).
    """
    with session_scope(engine) as session:
        before = current(session, PAYMENT_FLAG).definition
        if before.killed:
            raise StackError(
                "the routing flag's kill switch is on: every order goes to the baseline"
            )
        rules = [
            {"attribute": "customer_email", "operator": "==", "value": email_of(p), "path": p}
            for p in paths
        ]
        definition = before.model_dump(mode="json")
        definition["rules"] = rules + definition["rules"]
        set_split(session, PAYMENT_FLAG, definition, actor, f"{actor}: route its orders by email")
    time.sleep(FLAG_PROPAGATION_SECONDS)
    try:
        yield
    finally:
        with session_scope(engine) as session:
            restored = before.model_dump(mode="json")
            set_split(session, PAYMENT_FLAG, restored, actor, f"{actor}: done, split restored")


def place_orders(
    stack: Stack,
    kinds: dict[str, str],
    path: str,
    rate: float,
    placed: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """POST the orders to the front door, paced open loop at ``rate`` a second.

    :param stack: where to send them.
    :param kinds: order id -> kind (:mod:`tools.chaos.orders`).
    :param path: the path the orders must be routed to (checked against each answer).
    :param rate: orders a second.
    :param placed: called with each accepted order's id and wall-clock time.
    :returns: order id -> wall-clock time it was accepted.
    :raises StackError: when the intake refuses an order or routes it elsewhere.
    """
    accepted: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    start = time.monotonic()
    with httpx.Client(base_url=stack.intake_url, headers=headers, timeout=30) as http:
        for index, (order_id, kind) in enumerate(kinds.items()):
            time.sleep(max(0.0, start + index / rate - time.monotonic()))
            body = order_body(order_id, kind, customer_email=email_of(path))
            response = http.post("/orders", json=body)
            if response.status_code != 202:
                raise StackError(
                    f"the intake refused {order_id}: {response.status_code} {response.text[:200]}"
                )
            if (routed := response.json().get("path")) != path:
                raise StackError(f"{order_id} was routed to {routed!r}, not {path!r}")
            accepted[order_id] = time.time()
            if placed is not None:
                placed(order_id, accepted[order_id])
    return accepted


def statuses(engine: Engine, order_ids: Sequence[str]) -> dict[str, str]:
    """The orders' statuses now (orders with no row yet are left out)."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(OrderRow.order_id, OrderRow.status).where(OrderRow.order_id.in_(order_ids))
        ).all()
    return {order_id: status for order_id, status in rows}


def wait_terminal(
    engine: Engine,
    order_ids: Sequence[str],
    timeout: float,
    tick: Callable[[int], None] | None = None,
) -> list[str]:
    """Wait until every order is completed or failed; the ones still not terminal at the end.

    :param engine: the business store.
    :param order_ids: the orders.
    :param timeout: seconds to wait at most.
    :param tick: called with the number of terminal orders after each poll.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = statuses(engine, order_ids)
        waiting = [oid for oid in order_ids if now.get(oid) not in TERMINAL]
        if tick is not None:
            tick(len(order_ids) - len(waiting))
        if not waiting or time.monotonic() > deadline:
            return waiting
        time.sleep(0.5)


@dataclass
class FaultVerdict:
    """What a fault phase did and found.

    :param path: the path.
    :param fault: the fault's name.
    :param injected: what was done, or why it could not be.
    :param applied: whether the fault happened.
    :param kinds: the phase's orders (id -> kind).
    :param not_terminal: orders not terminal when the wait ended.
    :param violations: invariants that did not hold after settling.
    :param seconds: the phase's duration.
    """

    path: str
    fault: str
    injected: str
    applied: bool
    kinds: dict[str, str]
    not_terminal: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        """Every order terminal and every invariant held."""
        return not self.not_terminal and not self.violations


def fault_phase(
    stack: Stack,
    engine: Engine,
    path: str,
    orders: int,
    rate: float,
    timeout: float,
    start: int = 0,
) -> FaultVerdict:
    """Place ``orders`` on ``path``, inject the path's fault mid-run, check the invariants.

    :param stack: the stack.
    :param engine: its business store.
    :param path: ``dag``, ``saga``, ``hybrid`` or ``events``.
    :param orders: how many orders (at least 8 gives one of each kind).
    :param rate: orders a second.
    :param timeout: seconds to wait for the orders to be terminal.
    :param start: the phase's first position in the order mix.
    """
    fault = FAULTS[path]
    kinds = order_mix(orders, prefix=f"chaos-{path}", start=start)
    started = time.monotonic()
    errors: list[Exception] = []

    def place() -> None:
        try:
            place_orders(stack, kinds, path, rate)
        except Exception as exc:  # reported after the join, in this thread
            errors.append(exc)

    placing = threading.Thread(target=place, daemon=True)
    placing.start()
    time.sleep(min(2.0, orders / rate / 3))  # some orders in flight when the fault lands
    try:
        injected, applied = fault.inject(stack, list(kinds)), True
    except NotApplicable as exc:
        injected, applied = f"not injected: {exc}", False
    placing.join()
    if errors:
        raise errors[0]
    waiting = wait_terminal(engine, list(kinds), timeout)
    done = {oid: kind for oid, kind in kinds.items() if oid not in waiting}
    violations = settled_violations(engine, done, stack.gateway_url, settle_seconds=SETTLE_SECONDS)
    return FaultVerdict(
        path, fault.name, injected, applied, kinds, waiting, violations, time.monotonic() - started
    )

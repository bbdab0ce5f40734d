"""Crashes and broker faults in the middle of a 200-order run; nothing lost, nothing doubled.

SIGKILL lands between a service's gateway call and its commit, or between its commit and its
ack, at some point of the run: the redelivery must find the charge by its idempotency key and
the inbox must absorb what was already committed.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, func, select

from include.payments.tables import OrderRow
from segue.store.engine import session_scope
from tests.faults.conftest import Choreography, OrderFactory, order_mix, raw_order
from tools.broker import close_all_connections, vhost_of
from tools.chaos.invariants import assert_payment_invariants


def terminal_count(engine: Engine, order_ids: list[str]) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).where(
            OrderRow.order_id.in_(order_ids), OrderRow.status.in_(("completed", "failed"))
        )
        return int(session.scalar(query) or 0)


def wait_for_progress(engine: Engine, order_ids: list[str], at_least: int) -> None:
    deadline = time.monotonic() + 60
    while terminal_count(engine, order_ids) < at_least:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def place_paced(
    choreography: Choreography, order_data: OrderFactory, kinds: dict[str, str]
) -> threading.Thread:
    """Place the orders from a thread, about 40 per second, so faults land mid-run."""

    def place() -> None:
        for order_id, kind in kinds.items():
            choreography.place(raw_order(order_data, order_id, kind))
            time.sleep(0.025)

    thread = threading.Thread(target=place, daemon=True)
    thread.start()
    return thread


def test_sigkill_of_services_mid_run_then_restart_loses_and_doubles_nothing(
    choreography: Choreography, order_data: OrderFactory, gateway_url: str
) -> None:
    kinds = order_mix(order_data, 200)
    ids = list(kinds)
    placing = place_paced(choreography, order_data, kinds)
    for name, progress in (("charge", 40), ("inventory", 100)):
        wait_for_progress(choreography.engine, ids, at_least=progress)
        service = choreography.services[name]
        service.kill()
        assert not service.alive()
        time.sleep(0.5)  # work piles up while it is down
        service.restart()
    placing.join()

    choreography.wait_terminal(ids)

    assert terminal_count(choreography.engine, ids) == len(ids)
    assert_payment_invariants(choreography.engine, kinds, gateway_url)


def test_broker_dropping_every_connection_mid_run_loses_nothing(
    choreography: Choreography, order_data: OrderFactory, gateway_url: str, fresh_amqp_url: str
) -> None:
    kinds = order_mix(order_data, 200)
    ids = list(kinds)
    placing = place_paced(choreography, order_data, kinds)
    for progress in (40, 100):
        wait_for_progress(choreography.engine, ids, at_least=progress)
        close_all_connections(vhost_of(fresh_amqp_url))
    placing.join()

    choreography.wait_terminal(ids)

    assert_payment_invariants(choreography.engine, kinds, gateway_url)
    for service in choreography.services.values():
        assert service.alive(), f"{service.name} died:\n{service.log_tail()}"
        assert service.ready(), f"{service.name} did not reconnect:\n{service.log_tail()}"

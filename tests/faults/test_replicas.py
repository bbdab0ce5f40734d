"""Two replicas of every event-path consumer on the same queues; one of each SIGKILLed mid-run.

Competing consumers share each service's quorum queue, and the replicas' relays share one
source's outbox (one drains at a time: the relay's advisory lock); two intakes take the orders
and write one source's outbox from two processes. An order's events can land on both replicas
of a service at once; the domain steps serialize them on the order's row lock. Afterwards the
business invariants hold, the event log holds every completed order's events, no message was
parked (nothing given up as out of order or failing), and the surviving replicas alone finished
the run.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from include.payments.events import (
    ChargeCompleted,
    InventoryReserved,
    InventoryUpdated,
    OrderPlaced,
    OrderValidated,
    ReceiptSent,
    ShippingNotified,
)
from include.services import EVENT_PATH_PROCESSES, SERVICE_MODULES
from segue.bus.connection import connect
from segue.bus.topology import backlog, parking_queue_name
from segue.eventlog.service import SERVICE_NAME as EVENT_LOG
from segue.eventlog.store import EventLogRecord
from segue.store.engine import session_scope
from tests.faults.conftest import Choreography, OrderFactory, order_mix, run_choreography
from tests.faults.test_crashes import place_paced, terminal_count, wait_for_progress
from tools.chaos.invariants import assert_payment_invariants

REPLICATED = {**SERVICE_MODULES, EVENT_LOG: EVENT_PATH_PROCESSES[EVENT_LOG]}
INTAKE = "intake"  # two intakes too (one outbox source, two relays), both left running
REPLICAS = ("a", "b")
# (terminal orders reached, services whose replica "a" is then SIGKILLed)
KILLS = (
    (25, ("charge", "inventory", EVENT_LOG)),
    (60, ("validation", "receipt", "shipping")),
)
# What the event log must hold of every completed order, whichever replica recorded it.
COMPLETED_ORDER_EVENTS = frozenset(
    payload.event_type
    for payload in (
        OrderPlaced,
        OrderValidated,
        InventoryReserved,
        ChargeCompleted,
        InventoryUpdated,
        ReceiptSent,
        ShippingNotified,
    )
)


def replicated_processes() -> dict[str, str]:
    """The event path with every consumer twice (``charge-a``, ``charge-b``, ...)."""
    processes = {
        name: module
        for name, module in EVENT_PATH_PROCESSES.items()
        if name not in REPLICATED and name != INTAKE
    }
    for name, module in {**REPLICATED, INTAKE: EVENT_PATH_PROCESSES[INTAKE]}.items():
        processes.update({f"{name}-{replica}": module for replica in REPLICAS})
    return processes


@pytest.fixture
def replicated(
    fresh_amqp_url: str, engine: Engine, gateway_url: str, tmp_path: Path
) -> Iterator[Choreography]:
    with run_choreography(
        fresh_amqp_url, engine, gateway_url, tmp_path / "services", replicated_processes()
    ) as running:
        yield running


def handled(choreography: Choreography, process: str) -> int:
    """Messages the process handled so far (its /metrics)."""
    return int(choreography.services[process].metrics()["counts"].get("handled", 0))


def parked(amqp_url: str) -> dict[str, int]:
    """Messages waiting in each replicated service's parking queue."""
    with connect(amqp_url) as connection:
        return {name: backlog(connection, parking_queue_name(name)) for name in REPLICATED}


def missing_from_the_log(engine: Engine, completed: list[str]) -> dict[str, set[str]]:
    """Per completed order, the event types the event log does not hold (yet)."""
    with session_scope(engine) as session:
        query = select(EventLogRecord.subject, EventLogRecord.type)
        rows = session.execute(query.where(EventLogRecord.subject.in_(completed))).all()
    logged: dict[str, set[str]] = defaultdict(set)
    for subject, event_type in rows:
        logged[subject].add(event_type)
    missing = {order_id: COMPLETED_ORDER_EVENTS - logged[order_id] for order_id in completed}
    return {order_id: types for order_id, types in missing.items() if types}


def assert_logged(engine: Engine, completed: list[str], settle_seconds: float = 20.0) -> None:
    """Every completed order's events reach the log (the recorders may lag a little)."""
    deadline = time.monotonic() + settle_seconds
    while (missing := missing_from_the_log(engine, completed)) and time.monotonic() < deadline:
        time.sleep(0.5)
    some = dict(list(missing.items())[:3])
    assert not missing, f"{len(missing)} orders' events missing from the log, e.g. {some}"


def test_two_replicas_per_service_with_one_killed_mid_run_lose_and_double_nothing(
    replicated: Choreography, order_data: OrderFactory, gateway_url: str, fresh_amqp_url: str
) -> None:
    kinds = order_mix(order_data, 150)
    ids = list(kinds)
    placing = place_paced(replicated, order_data, kinds)
    for progress, names in KILLS:
        wait_for_progress(replicated.engine, ids, at_least=progress)
        for name in names:
            victim = f"{name}-a"
            assert handled(replicated, victim) > 0, f"{victim} competed for nothing"
            replicated.services[victim].kill()  # mid-batch, mid-relay: never restarted
            assert not replicated.services[victim].alive()
    placing.join()

    replicated.wait_terminal(ids)

    assert terminal_count(replicated.engine, ids) == len(ids)
    assert_payment_invariants(replicated.engine, kinds, gateway_url)
    assert_logged(replicated.engine, [oid for oid, kind in kinds.items() if kind == "good"])
    assert parked(fresh_amqp_url) == dict.fromkeys(REPLICATED, 0)
    for name in REPLICATED:
        survivor = replicated.services[f"{name}-b"]
        assert survivor.alive(), f"{survivor.name} died:\n{survivor.log_tail()}"
        assert handled(replicated, survivor.name) > 0

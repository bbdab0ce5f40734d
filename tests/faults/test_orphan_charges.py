"""A gateway charge whose answer was lost, for an order that out of stock failed meanwhile.

Real processes (every event-path service, the gateway, PostgreSQL, RabbitMQ): the gateway
charges and then stalls past the charge service's client timeout, so the charge service's
transaction rolls back with nothing recorded and its OrderValidated is retried later. Inventory
is held back until the gateway holds the charge, then fails the order first (out of stock).
Afterwards the gateway's ledger and our tables must agree: the one gateway charge of the failed
order is recorded and refunded exactly once, and RefundIssued is on the bus.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from include.gateway.admin import stats as gateway_stats
from include.payments.gateway_client import GatewayCharge, GatewayClient
from include.payments.tables import ChargeRow, OrderRow, RefundRow
from segue.bus.inbox import InboxRow
from segue.eventlog.store import EventLogRecord
from segue.store.engine import session_scope
from tests.faults.conftest import Choreography, OrderFactory, count, run_choreography
from tests.faults.test_choreography import DuplicatingTap
from tools.chaos.invariants import assert_payment_invariants

CLIENT_TIMEOUT = 2.0  # the services' gateway timeout here
STALL = CLIENT_TIMEOUT + 2.0  # the gateway answers this late (after charging)
DEADLINE = 90.0


@pytest.fixture
def impatient_choreography(
    fresh_amqp_url: str, engine: Engine, gateway_url: str, tmp_path: Path
) -> Iterator[Choreography]:
    """The ``choreography`` fixture with a short gateway timeout in the charge service."""
    timeout = {"SEGUE_GATEWAY_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT)}
    with run_choreography(
        fresh_amqp_url, engine, gateway_url, tmp_path / "services", **timeout
    ) as running:
        yield running


def wait_for(what: str, check: Callable[[], Any], choreography: Choreography) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the services' logs."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    logs = "\n".join(f"--- {s.name}\n{s.log_tail(12)}" for s in choreography.services.values())
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def events_of(engine: Engine, order_id: str, short_type: str) -> list[EventLogRecord]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(EventLogRecord).where(
                    EventLogRecord.subject == order_id,
                    EventLogRecord.type.endswith("." + short_type),
                )
            )
        )


def claimed_by_charge(engine: Engine, event_id: str) -> bool:
    with session_scope(engine) as session:
        return session.get(InboxRow, ("charge", event_id)) is not None


def status_of(engine: Engine, order_id: str) -> str | None:
    with session_scope(engine) as session:
        row = session.get(OrderRow, order_id)
        return None if row is None else row.status


@pytest.mark.parametrize("duplicated", [False, True], ids=["once", "every-event-twice"])
def test_lost_charge_of_an_out_of_stock_order_is_refunded_exactly_once(
    impatient_choreography: Choreography,
    order_data: OrderFactory,
    gateway_url: str,
    fresh_amqp_url: str,
    duplicated: bool,
    gateway_admin,
) -> None:
    choreography, engine = impatient_choreography, impatient_choreography.engine
    gateway = GatewayClient(gateway_url)
    tap = DuplicatingTap(fresh_amqp_url) if duplicated else contextlib.nullcontext()
    order_id = f"ord-orphan-{uuid.uuid4().hex[:12]}"
    order = order_data(
        order_id=order_id,
        items=[{"sku": "SKU-MUG", "quantity": 1}, {"sku": "SKU-SCARCE", "quantity": 1}],
    )
    inventory = choreography.services["inventory"]
    try:
        with tap:
            inventory.stop()  # so the charge service takes the order first
            gateway_admin.set_faults(timeout_rate=1.0, timeout_delay_seconds=STALL)
            choreography.place(order)

            def charged_at_gateway() -> list[GatewayCharge]:
                return gateway.list_charges(reference=order_id)

            wait_for("the gateway to charge", charged_at_gateway, choreography)
            assert count(engine, ChargeRow, order_id=order_id) == 0  # the answer was lost
            inventory.restart()  # fails the order between the charge service's retries
            wait_for("out of stock", lambda: status_of(engine, order_id) == "failed", choreography)
            gateway_admin.set_faults(timeout_rate=0.0)

            [reservation_failed] = wait_for(
                "InventoryReservationFailed",
                lambda: events_of(engine, order_id, "InventoryReservationFailed"),
                choreography,
            )
            [validated] = events_of(engine, order_id, "OrderValidated")
            charge_service = choreography.services["charge"]

            def settled() -> bool:
                """The charge service is done with both events (handled, or parked)."""
                parked = charge_service.metrics()["counts"].get("parked", 0)
                return claimed_by_charge(engine, reservation_failed.event_id) and (
                    claimed_by_charge(engine, validated.event_id) or parked > 0
                )

            wait_for("the charge service to handle both events", settled, choreography)
            refunds_issued = wait_for(
                "RefundIssued", lambda: events_of(engine, order_id, "RefundIssued"), choreography
            )
        [charge] = gateway.list_charges(reference=order_id)
    finally:
        gateway.close()
    assert (charge.status, charge.amount_refunded) == ("succeeded", Decimal("49.99"))
    stats = gateway_stats(gateway_url)
    assert stats["injected_timeouts"] >= 1
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (1, 1)
    assert count(engine, ChargeRow, order_id=order_id, gateway_charge_id=charge.id) == 1
    assert count(engine, RefundRow, order_id=order_id, gateway_charge_id=charge.id) == 1
    assert {event.payload["gateway_refund_id"] for event in refunds_issued} == {
        _refund_id(engine, order_id)
    }
    assert_payment_invariants(engine, {order_id: "out_of_stock"}, gateway_url)


def _refund_id(engine: Engine, order_id: str) -> str:
    with session_scope(engine) as session:
        return session.scalars(
            select(RefundRow.gateway_refund_id).where(RefundRow.order_id == order_id)
        ).one()

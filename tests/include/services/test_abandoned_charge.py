"""payment_hybrid gave up on the charge (no reply in time, or the task was killed on its last
try): its failure callback dead-letters the charge step and fails the order. A ChargeRequested
still queued is then refused without charging, and a charge made just before is refunded, once.
Counted in the gateway's ledger and in our tables (real PostgreSQL, real gateway process)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from include.gateway.admin import stats as gateway_stats
from include.payment_dags import dead_letter_failed_task
from include.payments.events import ChargeCompleted, ChargeFailed, ChargeRequested
from include.payments.tables import ChargeRow, RefundRow
from segue.events.envelope import Envelope
from segue.store.dead_letters import DeadLetter


def failed_task(order_id: str, task_id: str = "await_charge") -> dict[str, Any]:
    """The context Airflow hands an ``on_failure_callback`` (the parts the callback reads)."""
    return {
        "ti": SimpleNamespace(task_id=task_id, dag_id="payment_hybrid", try_number=1),
        "params": {"order_id": order_id},
        "run_id": "manual__abandoned",
        "exception": TimeoutError("no ChargeCompleted or ChargeFailed after 900s"),
    }


def charge_requested(order_id: str) -> Envelope:
    return Envelope.create(ChargeRequested(order_id=order_id), source="airflow", subject=order_id)


def test_a_command_still_queued_after_the_give_up_is_refused_without_a_charge(
    bus, store, deps, make_order, order_placed, gateway_url
):
    order = make_order()
    bus.deliver("validation", order_placed(order))

    dead_letter_failed_task(failed_task(order.order_id), deps)
    dead_letter_failed_task(failed_task(order.order_id), deps)  # a callback run twice

    [reply] = bus.deliver("charge", charge_requested(order.order_id))
    assert isinstance(reply.data, ChargeFailed)
    assert (reply.data.code, reply.data.requested_by) == ("order_failed", "charge_requested")
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 0
    assert store.count(ChargeRow) == 0
    assert store.order(order.order_id).status == "failed"
    assert store.count(DeadLetter, subject=order.order_id, step="charge") == 1


def test_a_charge_made_just_before_the_give_up_is_refunded_once(
    bus, store, deps, make_order, order_placed, gateway_url
):
    order = make_order()
    bus.deliver("validation", order_placed(order))
    [reply] = bus.deliver("charge", charge_requested(order.order_id))
    assert isinstance(reply.data, ChargeCompleted)  # the reply came too late for the DAG

    dead_letter_failed_task(failed_task(order.order_id), deps)
    dead_letter_failed_task(failed_task(order.order_id, "settle_charge"), deps)

    [again] = bus.deliver("charge", charge_requested(order.order_id))  # a new command
    assert isinstance(again.data, ChargeFailed) and again.data.code == "order_failed"
    stats = gateway_stats(gateway_url)
    assert (stats["charges"]["succeeded"], stats["refunds"]) == (1, 1)
    assert store.count(ChargeRow, order_id=order.order_id) == 1
    assert store.count(RefundRow, order_id=order.order_id) == 1
    assert store.order(order.order_id).status == "failed"
    assert store.count(DeadLetter, subject=order.order_id) == 1


def test_a_later_step_failing_refunds_the_recorded_charge_once(
    bus, store, deps, make_order, order_placed, gateway_url
):
    """A later step abandoned after the charge refunds it too: no charge outlives a failed order
    (before December 2026 the linear path left it to a person)."""
    order = make_order()
    bus.deliver("validation", order_placed(order))
    bus.deliver("charge", charge_requested(order.order_id))

    refunds_before = gateway_stats(gateway_url)["refunds"]
    dead_letter_failed_task(failed_task(order.order_id, "update_inventory"), deps)
    dead_letter_failed_task(failed_task(order.order_id, "update_inventory"), deps)  # called again

    assert gateway_stats(gateway_url)["refunds"] == refunds_before + 1
    assert store.count(RefundRow, order_id=order.order_id) == 1
    assert store.order(order.order_id).status == "failed"
    assert store.count(DeadLetter, subject=order.order_id, step="update_inventory") == 1

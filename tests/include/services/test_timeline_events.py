"""An order on the event path: its timeline lists every event, who emitted it, the event that
caused it and the services that handled it, then our charge and the outcome.

The order runs through the real handlers on the test kit's bus, with the event-log service
recording every event and each delivery claimed in the inbox as the runtime does.
"""

from __future__ import annotations

from sqlalchemy import Engine

from include.payments.events import PAYMENT_EVENTS
from include.payments.timeline import timeline_sources
from segue.eventlog.service import event_log_service
from segue.testing import InMemoryBus
from segue.timeline.merge import build_timeline
from segue.timeline.render import render_text

DECLINED_TOKEN = "pm_card_chargeDeclined"


def run_order(clean_db: Engine, services, order, order_placed) -> None:
    bus = InMemoryBus(clean_db, [*services.values(), event_log_service(PAYMENT_EVENTS)], inbox=True)
    bus.run(order_placed(order))


def test_an_event_path_orders_timeline_has_every_event_with_cause_and_handlers(
    clean_db: Engine, services, make_order, order_placed
) -> None:
    order = make_order()
    run_order(clean_db, services, order, order_placed)

    workflow = timeline_sources(clean_db)
    assert workflow.dag_runs(order.order_id) == []  # its events say: no DAG run to look for
    timeline = build_timeline(order.order_id, workflow.sources)
    assert timeline.missing == ()
    events = [t.entry for t in timeline.entries if t.entry.source == "event"]
    types = [e.details["type"].rsplit(".", 1)[-1] for e in events]
    assert types[0] == "OrderPlaced"
    assert sorted(types) == sorted(
        [
            "OrderPlaced",
            "OrderValidated",
            "InventoryReserved",
            "ChargeCompleted",
            "InventoryUpdated",
            "ReceiptSent",
            "ShippingNotified",
        ]
    )
    by_id = {e.details["event_id"]: e for e in events}
    placed = events[0]
    assert placed.details["causation_id"] is None
    assert placed.details["handled_by"] == ["validation"]
    for event in events[1:]:  # every later event names an event of this order as its cause
        assert event.details["causation_id"] in by_id
    charged = next(e for e in events if e.details["type"].endswith("ChargeCompleted"))
    assert charged.details["emitted_by"] == "charge"
    assert "charge" in by_id[charged.details["causation_id"]].details["handled_by"]

    kinds = [(t.entry.source, t.entry.kind) for t in timeline.entries]
    assert ("gateway", "charge") in kinds
    [charge] = [t.entry for t in timeline.entries if t.entry.kind == "charge"]
    assert charge.details["idempotency_key"] == f"{order.order_id}:charge"
    [outcome] = [t.entry for t in timeline.entries if t.entry.kind == "outcome"]
    assert outcome.state == "completed" and outcome.error is None
    offsets = [t.since_first_seconds for t in timeline.entries]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    assert "OrderPlaced from test" in render_text(timeline)


def test_a_declined_order_shows_its_failure_and_no_charge(
    clean_db: Engine, services, make_order, order_placed
) -> None:
    order = make_order(payment_method=DECLINED_TOKEN)
    run_order(clean_db, services, order, order_placed)

    timeline = build_timeline(order.order_id, timeline_sources(clean_db).sources)
    types = [t.entry.details.get("type", "").rsplit(".", 1)[-1] for t in timeline.entries]
    assert "ChargeFailed" in types
    assert not [t for t in timeline.entries if t.entry.kind == "charge"]
    [outcome] = [t.entry for t in timeline.entries if t.entry.kind == "outcome"]
    assert outcome.state == "failed" and outcome.error

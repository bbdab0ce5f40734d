"""The event log on PostgreSQL: idempotent recording, the timeline's order, its rendering, and
the event-log service spec."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, func, select

from include.payments.events import PAYMENT_EVENTS
from segue.bus.handlers import HandlerContext
from segue.eventlog.render import key_fields, offset, render_timeline
from segue.eventlog.replay import envelope_of
from segue.eventlog.service import SERVICE_NAME, event_log_service, record
from segue.eventlog.store import (
    EventLogRecord,
    order_timeline,
    record_event,
    record_events,
    timeline,
)
from segue.events.amqp import PREFIX
from segue.events.envelope import Envelope
from segue.store.engine import session_scope

Chain = Callable[..., list[Envelope]]


def count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(EventLogRecord)) or 0


def test_record_event_is_idempotent_on_event_id(log_engine: Engine, order_events: Chain) -> None:
    placed = order_events()[0]
    with session_scope(log_engine) as session:
        assert record_event(session, placed) is True
    with session_scope(log_engine) as session:
        assert record_event(session, placed) is False
        # the same id with other content (a buggy producer) does not overwrite the first row
        assert record_event(session, placed.model_copy(update={"source": "other"})) is False
    assert count(log_engine) == 1
    with session_scope(log_engine) as session:
        row = session.scalars(select(EventLogRecord)).one()
        assert (row.event_id, row.type, row.schema_version) == (placed.id, placed.type, 2)
        assert (row.source, row.subject, row.correlation_id) == (
            "order-api",
            placed.subject,
            placed.subject,
        )
        assert row.causation_id is None and row.traceparent == placed.traceparent
        assert row.time == placed.time and row.recorded_at >= row.time
        assert row.headers[PREFIX + "id"] == placed.id
        assert row.payload["order"]["amount"] == "49.99"  # money kept as a string
        assert envelope_of(row, PAYMENT_EVENTS) == placed, (
            "a logged event rebuilds to the same envelope"
        )


def test_record_events_writes_a_batch_once_skipping_logged_and_repeated_ids(
    log_engine: Engine, order_events: Chain
) -> None:
    events = order_events()
    with session_scope(log_engine) as session:
        assert record_events(session, events[:1]) == 1
    with session_scope(log_engine) as session:
        # already logged, repeated within the batch, and new ones: each id once
        assert record_events(session, [events[0], *events[1:], events[1]]) == len(events) - 1
        assert record_events(session, []) == 0
    assert count(log_engine) == len(events)
    with session_scope(log_engine) as session:
        rows = {row.event_id: row for row in session.scalars(select(EventLogRecord))}
    for envelope in events:
        assert envelope_of(rows[envelope.id], PAYMENT_EVENTS) == envelope, (
            "the batch form stores the same row"
        )


def test_timeline_orders_by_event_time_then_recorded_at(
    log_engine: Engine, order_events: Chain
) -> None:
    chain = order_events()
    same_time_as_reserved = chain[3].model_copy(update={"time": chain[2].time})
    other_order = order_events()
    with session_scope(log_engine) as session:
        # recorded out of order, the way events arrive from several services
        for envelope in [same_time_as_reserved, chain[1], *other_order, chain[2], chain[0]]:
            record_event(session, envelope)
    with session_scope(log_engine) as session:
        rows = timeline(session, chain[0].correlationid)
    assert [row.event_id for row in rows] == [chain[0].id, chain[1].id, chain[3].id, chain[2].id]
    # equal event times: the earlier recorded one comes first
    assert rows[2].recorded_at < rows[3].recorded_at
    with session_scope(log_engine) as session:
        assert timeline(session, "no-such-order") == []


def test_order_timeline_falls_back_to_subject(log_engine: Engine, order_events: Chain) -> None:
    placed = order_events()[0].model_copy(update={"correlationid": "dag-run-7"})
    with session_scope(log_engine) as session:
        record_event(session, placed)
    with session_scope(log_engine) as session:
        assert [r.event_id for r in order_timeline(session, placed.subject)] == [placed.id]
        assert [r.event_id for r in order_timeline(session, "dag-run-7")] == [placed.id]


def test_render_timeline(log_engine: Engine, order_events: Chain) -> None:
    chain = order_events()
    with session_scope(log_engine) as session:
        for envelope in reversed(chain):
            record_event(session, envelope)
    with session_scope(log_engine) as session:
        text = render_timeline(chain[0].subject, timeline(session, chain[0].correlationid))
    lines = text.splitlines()
    assert lines[0] == f"Order {chain[0].subject}: 4 events over 1.500s"
    placed, validated, reserved, charged = lines[1:]
    assert placed.split()[:4] == ["+0.000s", "OrderPlaced", "order-api", chain[0].id[:8]]
    assert "payment_method=pm_card_visa" in placed and "4242424242424242" not in placed
    assert "amount=49.99 currency=USD items=2" in placed
    assert "shipping" not in placed and "order_id" not in placed
    assert validated.split()[:5] == [
        "+0.120s",
        "OrderValidated",
        "validation",
        chain[1].id[:8],
        "<-",
    ]
    assert f"<- {chain[0].id[:8]}" in validated
    assert reserved.startswith("  +0.350s  InventoryReserved") and "lines=1" in reserved
    assert f"<- {chain[1].id[:8]}" in charged
    assert (
        "gateway_charge_id=ch_42 amount=49.99 currency=USD requested_by=order_validated" in charged
    )
    # columns line up: every event id starts at the same position
    assert (
        len({line.index(event.id[:8]) for line, event in zip(lines[1:], chain, strict=True)}) == 1
    )
    assert render_timeline("ord-x", []) == "No events recorded for ord-x."


def test_offsets_and_key_fields() -> None:
    assert offset(0) == "+0.000s"
    assert offset(62.5) == "+1m02.500s"
    assert key_fields({"order_id": "o", "amount": "10.00", "note": None, "lines": [1, 2]}) == (
        "amount=10.00 lines=2"
    )
    assert key_fields({"reason": "x" * 300}).endswith("…")


def test_event_log_service_records_every_type(log_engine: Engine, order_events: Chain) -> None:
    spec = event_log_service(PAYMENT_EVENTS)
    assert spec.name == SERVICE_NAME == "event-log"
    assert spec.routing_keys == ["#"]
    assert spec.registry is PAYMENT_EVENTS
    for model in PAYMENT_EVENTS:
        assert spec.handler_for(model.event_type) is record
    chain = order_events()
    with session_scope(log_engine) as session:
        for envelope in chain + chain:  # a redelivery is recorded once
            handler = spec.handler_for(envelope.type)
            assert handler is not None
            handler(HandlerContext(spec.name, envelope, session), envelope.data)
    assert count(log_engine) == len(chain)


def test_time_zone_is_kept(log_engine: Engine, order_events: Chain) -> None:
    placed = order_events()[0]
    with session_scope(log_engine) as session:
        record_event(session, placed)
    with session_scope(log_engine) as session:
        row = session.scalars(select(EventLogRecord)).one()
    assert row.time.utcoffset() == timedelta(0)

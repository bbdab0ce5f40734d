"""The event-log service run by the real bus runtime: every event recorded once, then shown."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select

from include.payments.events import PAYMENT_EVENTS
from segue.bus.connection import connect
from segue.bus.publisher import Publisher
from segue.bus.runtime import ServiceRuntime
from segue.eventlog.render import render_timeline
from segue.eventlog.service import event_log_service
from segue.eventlog.store import EventLogRecord, timeline
from segue.events.envelope import Envelope
from segue.store.engine import session_scope

Chain = Callable[..., list[Envelope]]


def logged(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(EventLogRecord)) or 0


def test_event_log_service_records_each_event_once(
    log_engine: Engine, fresh_amqp_url: str, order_events: Chain
) -> None:
    runtime = ServiceRuntime(
        event_log_service(PAYMENT_EVENTS), engine=log_engine, amqp_url=fresh_amqp_url
    )
    runtime.start()
    try:
        deadline = time.monotonic() + 20
        while not runtime.ready():
            assert time.monotonic() < deadline, "event-log service not ready"
            time.sleep(0.05)
        chain = order_events()
        with connect(fresh_amqp_url) as connection:
            publisher = Publisher(connection)
            for envelope in [chain[3], chain[0], chain[2], chain[1], chain[0], chain[3]]:
                publisher.publish_event(envelope)  # out of order, two duplicates
        deadline = time.monotonic() + 20
        while logged(log_engine) < 4:
            assert time.monotonic() < deadline, f"{logged(log_engine)} of 4 events logged"
            time.sleep(0.05)
        time.sleep(0.5)  # give the duplicates their chance to (wrongly) add rows
    finally:
        runtime.stop()
    assert logged(log_engine) == 4
    with session_scope(log_engine) as session:
        rows = timeline(session, chain[0].correlationid)
        text = render_timeline(chain[0].subject, rows)
    assert [row.event_id for row in rows] == [envelope.id for envelope in chain]
    assert "ChargeCompleted" in text.splitlines()[-1]


def test_main_runs_the_spec_with_the_bus_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    import segue.bus.runtime
    from segue.eventlog import service
    from segue.eventlog.store import COMPONENT

    ran: list[tuple[object, object]] = []
    monkeypatch.setattr(
        segue.bus.runtime, "run_service", lambda spec, **kw: ran.append((spec, kw["components"]))
    )
    assert service.main() == 0
    assert [(spec.name, components) for spec, components in ran] == [  # type: ignore[attr-defined]
        ("event-log", [COMPONENT])
    ]

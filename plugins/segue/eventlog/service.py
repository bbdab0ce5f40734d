"""The event-log service: binds ``#`` on the events exchange and records every event once.

Run it with ``python -m segue.eventlog.service``; the bus runtime decodes, dispatches to the
catch-all handler, commits and acks.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from include.payments.events import PAYMENT_EVENTS
from segue.bus.handlers import HandlerContext, ServiceSpec
from segue.eventlog.store import record_event, record_events
from segue.events.envelope import Envelope
from segue.events.payload import EventPayload

SERVICE_NAME = "event-log"


def record(ctx: HandlerContext, payload: EventPayload) -> None:
    """Catch-all handler: write the event to ``event_log`` (a duplicate is a no-op)."""
    record_event(ctx.session, ctx.envelope)


def record_batch(session: Session, envelopes: Sequence[Envelope]) -> None:
    """The same for a whole batch: one multi-row INSERT instead of one per event."""
    record_events(session, envelopes)


def event_log_service() -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE_NAME,
        handlers={},
        registry=PAYMENT_EVENTS,
        catch_all=record,
        catch_all_batch=record_batch,
        recorder=True,
    )


def main() -> int:
    from segue.bus.runtime import run_service  # late: the runtime pulls in Kombu and the store

    run_service(event_log_service())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

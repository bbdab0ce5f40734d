"""The event-log service: binds ``#`` on the events exchange and records every event once.

Run it with ``python -m segue.eventlog.service`` (it decodes with the registry named in
``SEGUE_EVENT_REGISTRY``); the bus runtime decodes, dispatches to the catch-all handler, commits
and acks.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from segue.bus.handlers import HandlerContext, ServiceSpec
from segue.eventlog.store import record_event, record_events
from segue.events.envelope import Envelope
from segue.events.payload import EventPayload
from segue.events.registry import EventRegistry

SERVICE_NAME = "event-log"


def record(ctx: HandlerContext, payload: EventPayload) -> None:
    """Catch-all handler: write the event to ``event_log`` (a duplicate is a no-op).

    :param ctx: the delivery (its session and envelope).
    :param payload: the event's data (unused).
    """
    record_event(ctx.session, ctx.envelope)


def record_batch(session: Session, envelopes: Sequence[Envelope]) -> None:
    """The same for a whole batch: one multi-row INSERT instead of one per event.

    :param session: the batch's transaction.
    :param envelopes: the batch's events.
    """
    record_events(session, envelopes)


def event_log_service(registry: EventRegistry) -> ServiceSpec:
    """The event-log service over the event types of ``registry`` (the workflow's events).

    :param registry: decodes and validates what the log records.
    """
    return ServiceSpec(
        name=SERVICE_NAME,
        handlers={},
        registry=registry,
        catch_all=record,
        catch_all_batch=record_batch,
        recorder=True,
    )


def main() -> int:
    """Run the event log service with the registry from settings, until SIGTERM."""
    from segue.bus.runtime import run_service  # late: the runtime pulls in Kombu and the store
    from segue.eventlog.store import COMPONENT
    from segue.imports import load_registry, registry_path

    run_service(event_log_service(load_registry(registry_path(None))), components=[COMPONENT])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

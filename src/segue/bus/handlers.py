"""What a choreographed service is: plain handlers over typed events, free of Kombu.

A handler gets the decoded event and a context holding the open database transaction. It does
its effects through the session and announces results with ``ctx.emit``; the runtime
(``segue.bus.consumer``) writes the inbox row, the effects and the emitted events (outbox) in
that one transaction, commits, and only then acks the message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from segue.events.envelope import Envelope
from segue.events.payload import EventPayload
from segue.events.registry import EventRegistry


class NotYet(Exception):
    """The event arrived before its turn (out of order), or what it needs is down for now; it
    is retried later, not dropped."""


class Unprocessable(Exception):
    """The event can never be handled as it is (e.g. the system it is for refuses it for good):
    its message is parked at once with ``code`` and the reason, not retried."""

    def __init__(self, code: str, reason: str) -> None:
        """:param code: a short machine-readable cause (the parking code).
        :param reason: what went wrong, for the human who replays or discards it.
        """
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class HandlerContext:
    """One event being handled: its envelope, the transaction, and the events it emits."""

    service: str
    envelope: Envelope
    session: Session
    emitted: list[Envelope] = field(default_factory=list)

    def emit(self, payload: EventPayload, *, subject: str | None = None, key: str = "") -> Envelope:
        """Queue an event caused by this one; it is published after the transaction commits.

        Its id is derived from the cause, the emitting service and the type, so handling the
        same event again (after a rollback or a replay) emits the same event id. A handler that
        emits several events of one type tells them apart with ``key`` (e.g. a refund id).
        """
        cause = self.envelope
        name = f"{cause.id}/{self.service}/{payload.event_type}" + (f"/{key}" if key else "")
        event_id = uuid.uuid5(uuid.NAMESPACE_URL, name)
        envelope = Envelope.create(
            payload,
            source=self.service,
            subject=subject or cause.subject,
            caused_by=cause,
            event_id=str(event_id),
        )
        self.emitted.append(envelope)
        return envelope


Handler = Callable[[HandlerContext, EventPayload], None]
# A recorder's catch-all for a whole batch at once (one statement instead of one per event).
BatchRecorder = Callable[[Session, Sequence[Envelope]], None]


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its name (queue ``segue.<name>``) and a handler per event type it consumes."""

    name: str
    handlers: Mapping[str, Handler]
    registry: EventRegistry
    # Consumers of every event (the event log) bind "#" and handle all types with one handler.
    catch_all: Handler | None = None
    # A recorder emits nothing and is idempotent by event id on its own (the event log): it
    # needs no inbox row and no outbox relay.
    recorder: bool = False
    # Optional for a recorder: ``catch_all`` for every message of a batch in one call. The
    # runtime uses it when the batch goes through cleanly and falls back to ``catch_all`` per
    # message (each in a savepoint) when it fails.
    catch_all_batch: BatchRecorder | None = None
    # Delayed retries of a NotYet before the message is parked; None: the runtime's default
    # (about two minutes). A service waiting on a system that may be down longer raises it.
    not_yet_limit: int | None = None

    def __post_init__(self) -> None:
        if self.catch_all_batch is not None and not (self.recorder and self.catch_all):
            raise ValueError("catch_all_batch needs a recorder with a catch_all handler")

    @property
    def routing_keys(self) -> list[str]:
        """What the service's queue binds: its event types, or ``#`` for a catch-all."""
        return ["#"] if self.catch_all is not None else sorted(self.handlers)

    def handler_for(self, event_type: str) -> Handler | None:
        """The handler of ``event_type``, else the catch-all, else None (not consumed).

        :param event_type: a CloudEvents ``type``.
        """
        return self.handlers.get(event_type, self.catch_all)

"""The consumer shell around a service's handlers: decode, validate, dispatch, commit, ack.

Messages are taken in small batches (bounded by the prefetch). Each message gets a savepoint in
one transaction holding its inbox row, its effects and its outbox rows; the transaction commits
and only then are the messages acked. A message that cannot be handled now is republished to
the delay queue (out of order, transient failure) or parked with its reason (not an event, no
handler, retries exhausted) before its ack, so nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kombu.message import Message
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.bus import inbox
from segue.bus.handlers import Handler, HandlerContext, NotYet, ServiceSpec
from segue.bus.outbox import add_to_outbox
from segue.bus.parking import attempt_of, park, retry_later
from segue.bus.publisher import Publisher
from segue.events.amqp import MAX_BODY_BYTES, attributes_from_headers, from_amqp
from segue.events.envelope import Envelope
from segue.events.errors import InvalidEvent
from segue.store.engine import session_scope

log = logging.getLogger(__name__)

RETRY_LIMIT = 5  # delayed retries of a failing handler before the message is parked
NOT_YET_LIMIT = 120  # delayed retries of an out-of-order event (about two minutes)


@dataclass(frozen=True)
class Decoded:
    message: Message
    envelope: Envelope
    handler: Handler


class BatchHandler:
    """Handles batches of raw messages for one service (no connection management here)."""

    def __init__(
        self,
        spec: ServiceSpec,
        engine: Engine,
        publisher: Publisher,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        retry_limit: int = RETRY_LIMIT,
        not_yet_limit: int = NOT_YET_LIMIT,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.publisher = publisher
        self.max_body_bytes = max_body_bytes
        self.retry_limit = retry_limit
        self.not_yet_limit = not_yet_limit
        self.on_commit = on_commit
        self.counts: Counter[str] = Counter()

    def handle(self, messages: list[Message]) -> None:
        """Handle, commit, then ack (or retry later / park, then ack) every message."""
        decoded = [item for item in map(self._decode, messages) if item is not None]
        emitted = 0
        done: list[Message] = []
        later: list[tuple[Message, bool, str]] = []  # (message, out of order?, reason)
        with session_scope(self.engine) as session:
            for item in decoded:
                try:
                    with session.begin_nested():
                        count = self._apply(session, item)
                    if count is None:
                        self.counts["duplicates"] += 1
                    else:
                        self.counts["handled"] += 1
                        emitted += count
                    done.append(item.message)
                except NotYet as exc:
                    later.append((item.message, True, str(exc) or "not its turn yet"))
                except Exception as exc:
                    log.warning(
                        "%s failed on %s: %r",
                        self.spec.name,
                        item.envelope.type,
                        exc,
                        extra=item.envelope.log_context(),
                    )
                    later.append((item.message, False, f"{type(exc).__name__}: {exc}"))
        if emitted and self.on_commit is not None:
            self.on_commit()  # wake the relay: there are new outbox rows
        for message in done:
            message.ack()
        for message, out_of_order, reason in later:
            self._later(message, out_of_order, reason)

    def _apply(self, session: Session, item: Decoded) -> int | None:
        """Claim, handle, queue the emitted events; how many were emitted (None: duplicate)."""
        envelope = item.envelope
        if not self.spec.recorder and not inbox.claim(session, self.spec.name, envelope.id):
            log.info("duplicate %s ignored", envelope.type, extra=envelope.log_context())
            return None
        context = HandlerContext(self.spec.name, envelope, session)
        item.handler(context, envelope.data)
        for emitted in context.emitted:
            add_to_outbox(session, emitted)
        log.info(
            "handled %s, emitted %s",
            envelope.type,
            [event.type.rsplit(".", 1)[-1] for event in context.emitted],
            extra=envelope.log_context(),
        )
        return len(context.emitted)

    def _decode(self, message: Message) -> Decoded | None:
        try:
            envelope = from_amqp(
                message.body,
                message.headers,
                message.content_type,
                self.spec.registry,
                max_body_bytes=self.max_body_bytes,
            )
        except InvalidEvent as exc:
            self._park(message, exc.code, exc.detail)
            return None
        handler = self.spec.handler_for(envelope.type)
        if handler is None:
            self._park(
                message, "no_handler", f"{self.spec.name} has no handler for {envelope.type}"
            )
            return None
        return Decoded(message, envelope, handler)

    def _later(self, message: Message, out_of_order: bool, reason: str) -> None:
        limit = self.not_yet_limit if out_of_order else self.retry_limit
        if attempt_of(message) >= limit:
            code = "out_of_order_timeout" if out_of_order else "retries_exhausted"
            self._park(message, code, f"after {limit} delayed retries: {reason}")
            return
        retry_later(self.publisher, message, self.spec.name)
        message.ack()
        self.counts["not_yet" if out_of_order else "retried"] += 1

    def _park(self, message: Message, code: str, reason: str) -> None:
        attributes = attributes_from_headers(message.headers)
        log.warning(
            "parked message %s: %s: %s",
            attributes.get("id", "?"),
            code,
            reason,
            extra={"correlation_id": str(attributes.get("correlationid", "")), "code": code},
        )
        park(self.publisher, message, self.spec.name, code, reason)
        message.ack()
        self.counts["parked"] += 1

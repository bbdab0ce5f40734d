"""The consumer shell around a service's handlers: decode, validate, dispatch, commit, ack.

Messages are taken in small batches (bounded by the prefetch) and handled in one transaction
holding their inbox rows, their effects and their outbox rows; the transaction commits and only
then are the messages acked. A batch is first tried the cheap way: the inbox rows of the whole
batch claimed with one statement, the handlers run without savepoints, the emitted events
written with one statement. If any handler raises, that transaction is rolled back and the batch
is redone one message at a time, each in a savepoint, so a failing message only affects itself.
A message that cannot be handled now is republished to the delay queue (out of order, transient
failure) or parked with its reason (not an event, no handler, retries exhausted, a handler
raising Unprocessable) before its ack, so nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from kombu.message import Message
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue.bus import inbox
from segue.bus.handlers import Handler, HandlerContext, NotYet, ServiceSpec, Unprocessable
from segue.bus.outbox import add_many_to_outbox, add_to_outbox
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
    """A message that decoded into an event, with its handler."""

    message: Message
    envelope: Envelope
    handler: Handler


@dataclass
class Outcome:
    """What a batch's transaction did, acted upon after its commit."""

    done: list[Message] = field(default_factory=list)
    later: list[tuple[Message, bool, str]] = field(default_factory=list)  # (msg, NotYet?, why)
    parked: list[tuple[Message, str, str]] = field(default_factory=list)  # (msg, code, why)
    emitted: int = 0


class BatchFailed(Exception):
    """A handler raised in the savepoint-free pass: the batch is redone message by message."""


def ack_together(messages: list[Message]) -> None:
    """Ack ``messages`` with one ``basic.ack multiple=True`` frame instead of one each.

    Only for a whole batch that is settled: the ack covers every delivery on the channel up to
    the highest tag, and every earlier delivery is either in this batch or was settled before
    (batches are handled in delivery order; messages parked at decoding were acked already).
    """
    last = max(messages, key=lambda message: message.delivery_tag)
    if len(messages) == 1:
        last.ack()
    else:
        last.ack(multiple=True)


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
        """A handler of one service's batches.

        :param spec: the service.
        :param engine: the store its transactions run on.
        :param publisher: republishes for delayed retries and parks.
        :param max_body_bytes: larger messages are parked.
        :param retry_limit: delayed retries of a failing handler before parking.
        :param not_yet_limit: delayed retries of an out-of-order event before parking.
        :param on_commit: called after a commit that queued events (wakes the relay).
        """
        self.spec = spec
        self.engine = engine
        self.publisher = publisher
        self.max_body_bytes = max_body_bytes
        self.retry_limit = retry_limit
        self.not_yet_limit = spec.not_yet_limit or not_yet_limit
        self.on_commit = on_commit
        self.counts: Counter[str] = Counter()

    def handle(self, messages: list[Message]) -> None:
        """Handle, commit, then ack (or retry later / park, then ack) every message.

        :param messages: a batch, in delivery order.
        """
        decoded = [item for item in map(self._decode, messages) if item is not None]
        if not decoded:
            return
        try:
            outcome = self._handle_together(decoded)
        except BatchFailed:
            self.counts["batches_redone"] += 1
            outcome = self._handle_one_by_one(decoded)
        if outcome.emitted and self.on_commit is not None:
            self.on_commit()  # wake the relay: there are new outbox rows
        if outcome.later or outcome.parked:
            for message in outcome.done:
                message.ack()
            for message, out_of_order, reason in outcome.later:
                self._later(message, out_of_order, reason)  # republished, then acked
            for message, code, reason in outcome.parked:
                self._park(message, code, reason)  # parked, then acked
        elif outcome.done:
            ack_together(outcome.done)

    def _handle_together(self, decoded: list[Decoded]) -> Outcome:
        """The whole batch in one transaction, no savepoints; BatchFailed if a handler raised.

        Set-based where it can be: one INSERT claims every inbox row, one INSERT queues every
        emitted event (ids in handling order), and a recorder's batch hook records them all.
        A commit failure is not BatchFailed: it propagates, nothing is acked, all is redelivered.
        """
        outcome = Outcome()
        emitted: list[Envelope] = []
        with session_scope(self.engine) as session:
            try:
                fresh, duplicates = self._claim_together(session, decoded)
                if self.spec.catch_all_batch is not None:
                    self.spec.catch_all_batch(session, [item.envelope for item in fresh])
                else:
                    for item in fresh:
                        emitted.extend(self._run_handler(session, item))
                add_many_to_outbox(session, emitted)
            except Exception as exc:
                raise BatchFailed from exc
        for item in duplicates:
            self._duplicate(item)
        self.counts["handled"] += len(fresh)
        outcome.done.extend(item.message for item in (*duplicates, *fresh))
        outcome.emitted = len(emitted)
        return outcome

    def _claim_together(
        self, session: Session, decoded: list[Decoded]
    ) -> tuple[list[Decoded], list[Decoded]]:
        """(to handle: first delivery of their event id, duplicates) with one inbox INSERT."""
        if self.spec.recorder:
            return decoded, []  # idempotent by event id on its own
        claimed = inbox.claim_many(session, self.spec.name, [d.envelope.id for d in decoded])
        fresh: list[Decoded] = []
        duplicates: list[Decoded] = []
        for item in decoded:
            if item.envelope.id in claimed:
                claimed.discard(item.envelope.id)  # a second copy in this batch is a duplicate
                fresh.append(item)
            else:
                duplicates.append(item)
        return fresh, duplicates

    def _handle_one_by_one(self, decoded: list[Decoded]) -> Outcome:
        """Each message in a savepoint: a failure rolls back that message alone."""
        outcome = Outcome()
        with session_scope(self.engine) as session:
            for item in decoded:
                try:
                    with session.begin_nested():
                        count = self._apply(session, item)
                    if count is not None:
                        self.counts["handled"] += 1
                        outcome.emitted += count
                    outcome.done.append(item.message)
                except NotYet as exc:
                    outcome.later.append((item.message, True, str(exc) or "not its turn yet"))
                except Unprocessable as exc:
                    outcome.parked.append((item.message, exc.code, exc.reason))
                except Exception as exc:
                    log.warning(
                        "%s failed on %s: %r",
                        self.spec.name,
                        item.envelope.type,
                        exc,
                        extra=item.envelope.log_context(),
                    )
                    outcome.later.append((item.message, False, f"{type(exc).__name__}: {exc}"))
        return outcome

    def _apply(self, session: Session, item: Decoded) -> int | None:
        """Claim, handle, queue the emitted events; how many were emitted (None: duplicate)."""
        envelope = item.envelope
        if not self.spec.recorder and not inbox.claim(session, self.spec.name, envelope.id):
            self._duplicate(item)
            return None
        emitted = self._run_handler(session, item)
        for event in emitted:
            add_to_outbox(session, event)
        return len(emitted)

    def _run_handler(self, session: Session, item: Decoded) -> list[Envelope]:
        """Run the message's handler in ``session``; the events it emitted."""
        envelope = item.envelope
        context = HandlerContext(self.spec.name, envelope, session)
        item.handler(context, envelope.data)
        if log.isEnabledFor(logging.DEBUG):  # one line per message: too dear at INFO
            log.debug(
                "handled %s, emitted %s",
                envelope.type,
                [event.type.rsplit(".", 1)[-1] for event in context.emitted],
                extra=envelope.log_context(),
            )
        return context.emitted

    def _duplicate(self, item: Decoded) -> None:
        self.counts["duplicates"] += 1
        log.info("duplicate %s ignored", item.envelope.type, extra=item.envelope.log_context())

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

"""The consumer shell around a service's handlers: decode, validate, dispatch, commit, ack.

Messages are taken in small batches (bounded by the prefetch) and handled in one transaction
holding their inbox rows, their effects and their outbox rows; the transaction commits and only
then are the messages acked. A batch is first tried the cheap way: the inbox rows of the whole
batch claimed with one statement, the handlers run without savepoints, the emitted events
written with one statement. If any handler raises, that transaction is rolled back and the batch
is redone one message at a time, each in a savepoint, so a failing message only affects itself.
A message that cannot be handled now is republished to the delay queue (out of order, transient
failure) or parked with its reason (not an event, no handler, retries exhausted, a handler
raising Unprocessable) before its ack, so nothing is dropped silently. A message under an event
id already handled is a duplicate when its content hash matches the inbox's (absorbed), and a
conflict when it does not: it is parked (``conflicting_duplicate``, both hashes in the reason)
after the commit, before any ack.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from kombu.message import Message
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from segue import tracing
from segue.bus import inbox
from segue.bus.batch import Conflict, Decoded, Outcome, ack_together
from segue.bus.handlers import HandlerContext, NotYet, ServiceSpec, Unprocessable
from segue.bus.outbox import add_many_to_outbox, add_to_outbox
from segue.bus.parking import attempt_of, park, retry_later
from segue.bus.publisher import Publisher
from segue.events.amqp import MAX_BODY_BYTES, attributes_from_headers, from_amqp
from segue.events.envelope import Envelope
from segue.events.errors import InvalidEvent
from segue.store.engine import session_scope

log = logging.getLogger(__name__)

CONFLICTING_DUPLICATE = "conflicting_duplicate"  # parking code: a reused id, other content
RETRY_LIMIT = 5  # delayed retries of a failing handler before the message is parked
NOT_YET_LIMIT = 120  # delayed retries of an out-of-order event (about two minutes)


class BatchFailed(Exception):
    """A handler raised in the savepoint-free pass: the batch is redone message by message."""


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
        for conflict in outcome.conflicts:  # before any multiple ack could cover them
            self._conflicting(conflict)
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
                fresh, duplicates, conflicts = self._claim_together(session, decoded)
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
        outcome.conflicts.extend(conflicts)
        outcome.emitted = len(emitted)
        return outcome

    def _claim_together(
        self, session: Session, decoded: list[Decoded]
    ) -> tuple[list[Decoded], list[Decoded], list[Conflict]]:
        """(to handle, true duplicates, conflicts) with one inbox INSERT.

        To handle: the first delivery of its event id. The others are compared by content
        hash with the copy claimed in this batch, or else with the inbox row (one SELECT, only
        when there are such messages).
        """
        if self.spec.recorder:
            return decoded, [], []  # idempotent by event id on its own
        claimed = inbox.claim_many(
            session, self.spec.name, [(d.envelope.id, d.digest) for d in decoded]
        )
        fresh: list[Decoded] = []
        seen: dict[str, str] = {}
        unclaimed: list[Decoded] = []
        for item in decoded:
            if item.envelope.id in claimed:
                claimed.discard(item.envelope.id)  # a second copy in this batch is not fresh
                seen[item.envelope.id] = item.digest
                fresh.append(item)
            else:
                unclaimed.append(item)
        stored: dict[str, str | None] = dict(seen)
        earlier = [item.envelope.id for item in unclaimed if item.envelope.id not in seen]
        stored.update(inbox.stored_hashes(session, self.spec.name, earlier))
        duplicates: list[Decoded] = []
        conflicts: list[Conflict] = []
        for item in unclaimed:
            known = stored.get(item.envelope.id)
            if inbox.matches(known, item.digest):
                duplicates.append(item)
            else:
                conflicts.append(Conflict(item, str(known)))
        return fresh, duplicates, conflicts

    def _handle_one_by_one(self, decoded: list[Decoded]) -> Outcome:
        """Each message in a savepoint: a failure rolls back that message alone."""
        outcome = Outcome()
        with session_scope(self.engine) as session:
            for item in decoded:
                try:
                    with session.begin_nested():
                        count = self._apply(session, item, outcome)
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

    def _apply(self, session: Session, item: Decoded, outcome: Outcome) -> int | None:
        """Claim, handle, queue the emitted events; how many were emitted.

        None when the event id was handled before: a true duplicate goes to ``outcome.done``
        (acked), a conflicting one to ``outcome.conflicts`` (parked after the commit).
        """
        envelope = item.envelope
        if not self.spec.recorder and not inbox.claim(
            session, self.spec.name, envelope.id, item.digest
        ):
            known = inbox.stored_hashes(session, self.spec.name, [envelope.id]).get(envelope.id)
            if inbox.matches(known, item.digest):
                self._duplicate(item)
                outcome.done.append(item.message)
            else:
                outcome.conflicts.append(Conflict(item, str(known)))
            return None
        emitted = self._run_handler(session, item)
        for event in emitted:
            add_to_outbox(session, event)
        return len(emitted)

    def _run_handler(self, session: Session, item: Decoded) -> list[Envelope]:
        """Run the message's handler in ``session``; the events it emitted."""
        envelope = item.envelope
        context = HandlerContext(self.spec.name, envelope, session)
        with tracing.span(f"{self.spec.name} {envelope.type}", traceparent=envelope.traceparent):
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

    def _conflicting(self, conflict: Conflict) -> None:
        """Park a message that reuses a handled event id with other content (never dropped)."""
        envelope = conflict.item.envelope
        self.counts["conflicting_duplicates"] += 1
        reason = (
            f"event id {envelope.id} ({envelope.type}, subject {envelope.subject}) was handled "
            f"by {self.spec.name} with content hash {conflict.stored}; this message has content "
            f"hash {conflict.item.digest}: the id was reused for another event"
        )
        self._park(conflict.item.message, CONFLICTING_DUPLICATE, reason)

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

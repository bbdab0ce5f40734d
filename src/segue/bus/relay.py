"""The outbox relay: publishes outbox rows with confirms, in id order, and deletes them.

A batch is deleted (one ``DELETE .. RETURNING``), published in one go and its confirms awaited
together (``Publisher.publish_many``); only when the broker confirmed every message does the
delete commit.

One relay drains one source's rows at a time (a PostgreSQL advisory lock per source), so each
order's events leave in the order they were written, even with several replicas of a service
each running a relay: the others find the lock taken, skip, and poll. (``SKIP LOCKED`` batches
would not do: two relays could publish one order's later event before its earlier one.)
A crash between the confirm and the commit publishes the rows again: duplicates are allowed and
the consumers' inboxes absorb them.

Circuit breaker: before a batch, the relay looks at the backlog of the queues it publishes into;
while one holds more than ``backlog_threshold`` messages it stops publishing (rows wait safely in
the outbox) and resumes as the queue drains. An event storm therefore piles up in PostgreSQL, not
in RabbitMQ's or a consumer's memory.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kombu import Connection
from sqlalchemy import BigInteger, Boolean, Delete, Engine, bindparam, delete, func, select

from segue import tracing
from segue.bus.outbox import OutboxRow
from segue.bus.publisher import Publisher
from segue.bus.topology import EVENTS, backlog
from segue.events.amqp import PREFIX, AmqpMessage

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BACKLOG_CHECK_SECONDS = 0.5


@dataclass
class BacklogBreaker:
    """Open while any watched queue holds more than ``threshold`` ready messages."""

    connection: Connection
    threshold: int
    queues_for: Callable[[str], Sequence[str]]
    _checked_at: float = 0.0
    _open_queue: str | None = None
    _sent: int = 0  # published since the last backlog reading
    opened: int = 0  # times the breaker opened (for metrics and tests)
    backlogs: dict[str, int] = field(default_factory=dict)

    @property
    def open_queue(self) -> str | None:
        """The queue holding the circuit open (None: closed)."""
        return self._open_queue

    def blocked_by(self, routing_keys: Iterable[str]) -> str | None:
        """The queue that blocks publishing these routing keys now, or None.

        Backlogs are read from the broker at most every BACKLOG_CHECK_SECONDS; in between, what
        this relay published since the last reading counts as backlog, so the overshoot past
        the threshold stays within one batch.

        :param routing_keys: the keys about to be published.
        """
        queues = sorted({queue for key in routing_keys for queue in self.queues_for(key)})
        now = time.monotonic()
        if now - self._checked_at >= BACKLOG_CHECK_SECONDS:
            self._checked_at = now
            self._sent = 0
            self.backlogs = {queue: backlog(self.connection, queue) for queue in queues}
        full = [q for q in queues if self.backlogs.get(q, 0) + self._sent > self.threshold]
        before = self._open_queue
        self._open_queue = full[0] if full else None
        if self._open_queue and self._open_queue != before:
            self.opened += before is None
            log.warning(
                "circuit open: %s holds about %d messages (> %d); publishing paused",
                self._open_queue,
                self.backlogs.get(self._open_queue, 0) + self._sent,
                self.threshold,
            )
        elif before and not self._open_queue:
            log.info("circuit closed: backlogs below %d; publishing resumed", self.threshold)
        return self._open_queue

    def record_published(self, count: int) -> None:
        """Count messages published since the last backlog reading.

        :param count: how many.
        """
        self._sent += count


def lock_key(source: str) -> int:
    """The advisory lock id that keeps one relay per source draining at a time.

    :param source: the outbox source (the service name).
    """
    return zlib.crc32(f"segue.outbox:{source}".encode())


class OutboxRelay:
    """Publishes one source's outbox rows; ``drain_once`` publishes at most one batch."""

    def __init__(
        self,
        engine: Engine,
        connection: Connection,
        *,
        source: str,
        breaker: BacklogBreaker | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        """A relay of one source's outbox rows.

        :param engine: the store holding the outbox.
        :param connection: the broker connection to publish on.
        :param source: whose rows (the service name).
        :param breaker: holds publishing back while a consumer's queue is too long.
        :param batch_size: rows published per drain.
        """
        self.engine = engine
        self.publisher = Publisher(connection)
        self.source = source
        self.breaker = breaker
        self.batch_size = batch_size
        self.published = 0
        self.paused = False
        # Built once: building it per drain was 5-6% of a service's CPU at 10 orders/s.
        self._take_rows = self._take_rows_statement(engine.dialect.name)
        self._held_keys: frozenset[str] = frozenset()  # routing keys of a batch held back

    def _take_rows_statement(self, dialect: str) -> Delete:
        """Delete the next batch of this source's rows, in id order, returning them (published
        before the transaction commits; a failed publish rolls the delete back).

        One statement where a select and a delete were two: a one-row drain costs 0.74x the
        CPU (``benchmarks/relay_drain.py``). On PostgreSQL only while this transaction holds the
        source's advisory lock, taken in the same round trip (an uncorrelated subquery runs
        once, before the scan: a one-time filter; not locked means no rows).

        ``FOR UPDATE`` in the subquery closes a race the lock alone leaves open: the
        statement's snapshot is taken before the lock is tried, so a relay can win the lock
        the moment another commits its batch's delete while still seeing those rows, and
        publish them again. Locking a row re-reads it; rows deleted meanwhile are skipped
        (READ COMMITTED) and the limit takes the next ones. No other transaction holds these
        rows' locks, so it never waits.
        """
        batch = (
            select(OutboxRow.id)
            .where(OutboxRow.source == self.source)
            .order_by(OutboxRow.id)
            .limit(self.batch_size)
        )
        if dialect == "postgresql":
            key = bindparam("key", lock_key(self.source), type_=BigInteger)
            batch = batch.where(
                select(func.pg_try_advisory_xact_lock(key, type_=Boolean)).scalar_subquery()
            ).with_for_update()
        return (
            delete(OutboxRow)
            .where(OutboxRow.id.in_(batch.scalar_subquery()))
            .returning(
                OutboxRow.id,
                OutboxRow.routing_key,
                OutboxRow.body,
                OutboxRow.headers,
                OutboxRow.properties,
            )
        )

    def drain_once(self) -> int:
        """Publish and delete up to one batch; the number published (0: nothing or paused)."""
        if self._held_keys and self._blocked(self._held_keys):
            return 0  # the batch held back last time still may not go: not even a statement
        with self.engine.connect() as connection, connection.begin() as transaction:
            rows = sorted(connection.execute(self._take_rows).all(), key=lambda row: row.id)
            if not rows:
                return 0
            keys = frozenset(row.routing_key for row in rows)
            if self._blocked(keys):
                transaction.rollback()  # the rows stay in the outbox
                self._held_keys = keys
                return 0
            self._held_keys = frozenset()
            started = time.time_ns()
            self.publisher.publish_many(
                [
                    AmqpMessage(row.routing_key, row.body, row.headers, row.properties)
                    for row in rows
                ],
                EVENTS,
            )  # in id order, all confirmed before the delete commits
            tracing.record_published(self.source, map(traced, rows), started)
        if self.breaker is not None:
            self.breaker.record_published(len(rows))
        self.published += len(rows)
        return len(rows)

    def _blocked(self, routing_keys: frozenset[str]) -> bool:
        """Whether the breaker holds these keys back now (and ``paused`` says so)."""
        self.paused = self.breaker is not None and self.breaker.blocked_by(routing_keys) is not None
        return self.paused

    def pending(self) -> int:
        """Rows of this source still waiting to be published."""
        with self.engine.connect() as connection:
            query = select(func.count()).where(OutboxRow.source == self.source)
            return int(connection.execute(query).scalar_one())


def traced(row: OutboxRow) -> tuple[str, str]:
    """(event type, traceparent) of an outbox row, for its relay span.

    :param row: a published row.
    """
    return row.routing_key, str(row.headers.get(PREFIX + "traceparent", ""))


def queues_by_routing_key(bindings: Mapping[str, Sequence[str]]) -> Callable[[str], list[str]]:
    """``routing key -> queues`` from ``queue -> routing keys`` ("#" means every key).

    :param bindings: each queue's routing keys.
    """

    def queues_for(routing_key: str) -> list[str]:
        return [queue for queue, keys in bindings.items() if "#" in keys or routing_key in keys]

    return queues_for

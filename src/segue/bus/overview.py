"""The event path at a glance: each service's lag, retries, parked messages and outbox backlog.

Read from the two places that hold the truth, not from the services' own counters: RabbitMQ
(a passive declare of each service's three queues answers its ready messages and consumers) and
the outbox table (rows not yet published, per source, and the age of the oldest). A service
that is down still shows its growing lag this way. A part that cannot be read (broker or
database unreachable, a queue not declared yet) is named in ``missing``; the rest is shown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from kombu import Connection
from kombu.exceptions import OperationalError
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from segue.bus.tables import OutboxRow
from segue.bus.topology import parking_queue_name, queue_name, retry_queue_name

log = logging.getLogger(__name__)


class QueueDepth(BaseModel):
    """One queue as the broker reports it.

    :param queue: its name.
    :param ready: messages waiting to be delivered.
    :param consumers: consumers attached (a service's replicas on its main queue).
    """

    model_config = ConfigDict(frozen=True)

    queue: str
    ready: int
    consumers: int


class ServiceBacklog(BaseModel):
    """What waits on one service.

    :param service: the service (its queues are ``segue.<service>``, ``.retry``, ``.parked``).
    :param lag: its main queue (None when it could not be read).
    :param retrying: its retry queue.
    :param parked: its parking queue: messages it could not handle, kept with the reason.
    :param outbox_pending: events it wrote that the relay has not published yet.
    :param outbox_oldest_seconds: the age of the oldest of those (None when there are none).
    """

    model_config = ConfigDict(frozen=True)

    service: str
    lag: QueueDepth | None = None
    retrying: QueueDepth | None = None
    parked: QueueDepth | None = None
    outbox_pending: int = 0
    outbox_oldest_seconds: float | None = None

    @property
    def attention(self) -> bool:
        """True when something waits that an operator should look at."""
        parked = self.parked.ready if self.parked else 0
        no_consumer = self.lag is not None and self.lag.ready > 0 and self.lag.consumers == 0
        return parked > 0 or no_consumer


class BusOverview(BaseModel):
    """Every service's backlog, and the parts that could not be read.

    :param services: one row per service, named ones first, then outbox-only sources.
    :param missing: what could not be read, each with the reason.
    :param read_at: when it was read.
    """

    model_config = ConfigDict(frozen=True)

    services: tuple[ServiceBacklog, ...]
    missing: tuple[str, ...]
    read_at: datetime


def read_overview(
    *, amqp_url: str, engine: Engine | None, services: Sequence[str], timeout: float = 3.0
) -> BusOverview:
    """Read every service's queues from the broker and the outbox backlog from the database.

    :param amqp_url: the broker the services consume from.
    :param engine: the business store holding the outbox (None: the outbox is not read).
    :param services: the consuming services' names; outbox sources not among them are added.
    :param timeout: seconds to wait for the broker before giving up on it.
    """
    missing: list[str] = []
    now = datetime.now(UTC)
    outbox = _outbox_backlog(engine, now, missing)
    queues = _queue_depths(amqp_url, services, timeout, missing)
    names = list(dict.fromkeys([*services, *sorted(outbox)]))
    rows = tuple(
        ServiceBacklog(
            service=name,
            lag=queues.get(queue_name(name)),
            retrying=queues.get(retry_queue_name(name)),
            parked=queues.get(parking_queue_name(name)),
            outbox_pending=outbox.get(name, (0, None))[0],
            outbox_oldest_seconds=outbox.get(name, (0, None))[1],
        )
        for name in names
    )
    return BusOverview(services=rows, missing=tuple(missing), read_at=now)


def _queue_depths(
    amqp_url: str, services: Iterable[str], timeout: float, missing: list[str]
) -> dict[str, QueueDepth]:
    """Ready messages and consumers of each service's three queues (passive declares)."""
    found: dict[str, QueueDepth] = {}
    names = [
        name
        for service in services
        for name in (queue_name(service), retry_queue_name(service), parking_queue_name(service))
    ]
    try:
        with Connection(amqp_url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            for name in names:
                depth = _depth(connection, name)
                if depth is None:
                    missing.append(f"queue {name}: not declared")
                else:
                    found[name] = depth
    except (OSError, OperationalError, *Connection().connection_errors) as exc:
        log.warning("event path overview: broker unreachable (%r)", exc)
        missing.append(f"broker: unreachable ({exc})")
    return found


def _depth(connection: Connection, name: str) -> QueueDepth | None:
    """One queue's depth; None if it does not exist (the broker then closes the channel)."""
    channel = connection.channel()
    try:
        declared = channel.queue_declare(queue=name, passive=True)
    except connection.channel_errors:
        return None
    finally:
        with contextlib.suppress(Exception):  # closed by the broker after a failed declare
            channel.close()
    return QueueDepth(
        queue=name, ready=int(declared.message_count), consumers=int(declared.consumer_count)
    )


def _outbox_backlog(
    engine: Engine | None, now: datetime, missing: list[str]
) -> dict[str, tuple[int, float | None]]:
    """Per source: outbox rows waiting for the relay, and the oldest one's age in seconds."""
    if engine is None:
        missing.append("outbox: no database configured")
        return {}
    query = select(OutboxRow.source, func.count(), func.min(OutboxRow.created_at)).group_by(
        OutboxRow.source
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as exc:
        log.warning("event path overview: outbox unreadable (%s)", exc)
        missing.append(f"outbox: unreadable ({type(exc).__name__})")
        return {}
    backlog: dict[str, tuple[int, float | None]] = {}
    for source, count, oldest in rows:
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (now - oldest).total_seconds() if oldest is not None else None
        backlog[str(source)] = (int(count), age)
    return backlog

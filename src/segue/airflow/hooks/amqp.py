"""AmqpHook: Segue's RabbitMQ from an Airflow connection (default conn id ``segue_amqp``).

The connection gives host, port, login, password and the vhost as ``schema``; extras may set
``heartbeat``, ``connect_timeout``, ``ssl`` and ``max_retries``. Triggers never receive these
values (a password would then sit in the trigger table): they take the conn id and resolve it in
the triggerer with ``await AmqpHook.aconnection_params(conn_id)``.

Reply queues: ``declare_reply_queue`` binds a private durable queue to ``segue.correlation``
for one correlation id and the awaited event types, before the request is published, so a fast
reply cannot be missed. Unused queues expire after a day (``x-expires``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseHook
from kombu import Connection, Queue, binding
from kombu.message import Message

from segue.bus.connection import CONNECT_TIMEOUT_SECONDS, HEARTBEAT_SECONDS, MAX_RETRIES, connect
from segue.bus.publisher import Publisher
from segue.bus.topology import CORRELATION, declare_exchanges
from segue.events.amqp import PREFIX, from_amqp
from segue.events.envelope import Envelope
from segue.events.errors import InvalidEvent
from segue.events.registry import EventRegistry

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "segue_amqp"
REPLY_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
CORRELATION_HEADER = PREFIX + "correlationid"
TYPE_HEADER = PREFIX + "type"


def envelope_to_json(envelope: Envelope) -> dict[str, Any]:
    """The envelope as JSON-safe values, ``data`` with its fields (for XCom and trigger events).

    :param envelope: the event to carry.
    """
    return envelope.model_dump(mode="json", serialize_as_any=True)


def envelope_from_json(data: dict[str, Any], registry: EventRegistry) -> Envelope:
    """Rebuild an envelope from ``Envelope.model_dump(mode="json")`` (an XCom or trigger event).

    :param data: the dumped envelope.
    :param registry: decodes ``data["data"]`` into its payload model.
    """
    payload = registry.parse(data["type"], int(data["schemaversion"]), data["data"])
    return Envelope.model_validate({**data, "data": payload})


def reply_queue_name(correlation_id: str, event_types: Sequence[str]) -> str:
    """``segue.bridge.<correlation id>.<digest of the types>``: one queue per awaited answer.

    :param correlation_id: the conversation the answer belongs to.
    :param event_types: the event types that answer it.
    """
    digest = hashlib.sha256("|".join(sorted(set(event_types))).encode()).hexdigest()[:8]
    return f"segue.bridge.{correlation_id}.{digest}"


def reply_queue(correlation_id: str, event_types: Sequence[str]) -> Queue:
    """A durable classic queue bound per type to the correlation id (headers, ``x-match: all``).

    :param correlation_id: the conversation the answer belongs to.
    :param event_types: the event types that answer it (at least one).
    """
    if not event_types:
        raise ValueError("a reply queue needs at least one event type")
    bindings = [
        binding(
            CORRELATION,
            arguments={"x-match": "all", CORRELATION_HEADER: correlation_id, TYPE_HEADER: kind},
        )
        for kind in sorted(set(event_types))
    ]
    return Queue(
        reply_queue_name(correlation_id, event_types),
        bindings=bindings,
        durable=True,
        queue_arguments={"x-queue-type": "classic", "x-expires": REPLY_QUEUE_EXPIRES_MS},
    )


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AmqpParams:
    """Everything needed to connect, as plain values (``asdict`` gives the dict form)."""

    url: str
    heartbeat: float = HEARTBEAT_SECONDS
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS
    max_retries: int = MAX_RETRIES

    @classmethod
    def from_connection(cls, conn: Any) -> AmqpParams:
        """The broker parameters of an Airflow connection (login, password, host, vhost, extras).

        :param conn: an Airflow ``Connection`` (its ``extra`` may set ssl, heartbeat and timeouts).
        """
        extra = conn.extra_dejson or {}
        user = quote(conn.login or "guest", safe="")
        password = quote(conn.password or "", safe="")
        vhost = quote(conn.schema or "/", safe="")
        url = f"amqp://{user}:{password}@{conn.host or '127.0.0.1'}:{conn.port or 5672}/{vhost}"
        if _truthy(extra.get("ssl", False)):
            url += "?ssl=1"
        return cls(
            url=url,
            heartbeat=float(extra.get("heartbeat", HEARTBEAT_SECONDS)),
            connect_timeout=float(extra.get("connect_timeout", CONNECT_TIMEOUT_SECONDS)),
            max_retries=int(extra.get("max_retries", MAX_RETRIES)),
        )

    def connect(self) -> Connection:
        """A Kombu connection with these parameters, its first connect bounded."""
        # max_retries bounds kombu's reconnects of the channel; connect() bounds the first one.
        return connect(
            self.url,
            heartbeat=self.heartbeat,
            connect_timeout=self.connect_timeout,
            max_retries=self.max_retries,
        )


class AmqpHook(BaseHook):
    """One Kombu connection (not thread-safe: one hook per thread), opened on first use."""

    conn_name_attr = "amqp_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "amqp"
    hook_name = "Segue RabbitMQ (AMQP)"

    def __init__(
        self, amqp_conn_id: str = DEFAULT_CONN_ID, *, params: AmqpParams | None = None
    ) -> None:
        """A hook over one Airflow connection; nothing is resolved or opened until first used.

        :param amqp_conn_id: the Airflow connection to the broker.
        :param params: resolved parameters to use instead of looking the connection up.
        """
        super().__init__()
        self.amqp_conn_id = amqp_conn_id
        self._params = params
        self._conn: Connection | None = None
        self._declared = False

    @classmethod
    async def aconnection_params(cls, conn_id: str = DEFAULT_CONN_ID) -> AmqpParams:
        """Resolve ``conn_id`` without blocking (for triggers: the sync getter fails there)."""
        return AmqpParams.from_connection(await cls.aget_connection(conn_id))

    @property
    def params(self) -> AmqpParams:
        """The resolved broker parameters (looked up once, on first use)."""
        if self._params is None:
            self._params = AmqpParams.from_connection(self.get_connection(self.amqp_conn_id))
        return self._params

    def connection_params(self) -> dict[str, Any]:
        """The resolved connection as a plain dict (contains the password: don't persist it)."""
        return asdict(self.params)

    def get_conn(self) -> Connection:
        """The hook's Kombu connection, opened on first use and reused until ``close``."""
        if self._conn is None:
            self._conn = self.params.connect()
            self._declared = False
        return self._conn

    def close(self) -> None:
        """Release the connection, if open; the next use opens a new one."""
        if self._conn is not None:
            self._conn.release()
            self._conn = None

    def __enter__(self) -> AmqpHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _topology(self) -> Connection:
        conn = self.get_conn()
        if not self._declared:
            declare_exchanges(conn)
            self._declared = True
        return conn

    def publish_event(self, envelope: Envelope) -> None:
        """Publish with a publisher confirm; unroutable raises ``PublishFailed``.

        :param envelope: the event to publish.
        """
        try:
            Publisher(self._topology()).publish_event(envelope)
        except Exception:
            self.close()  # a broken channel is not reused
            raise

    def declare_reply_queue(self, correlation_id: str, event_types: Sequence[str]) -> str:
        """Declare (idempotently) the reply queue of ``correlation_id``; returns its name."""
        queue = reply_queue(correlation_id, event_types)
        queue(self._topology().default_channel).declare()
        return str(queue.name)

    def delete_reply_queue(self, correlation_id: str, event_types: Sequence[str]) -> None:
        """Drop a reply queue whose answer has been recorded (else it expires after a day).

        :param correlation_id: the conversation whose queue goes.
        :param event_types: the types the queue was declared for (they name it).
        """
        name = reply_queue_name(correlation_id, event_types)
        self.get_conn().default_channel.queue_delete(queue=name)

    def get_matching_event(
        self,
        queue: str,
        event_types: Sequence[str],
        registry: EventRegistry,
        timeout: float = 0.0,
        *,
        caused_by: str | None = None,
        ack: bool = True,
        poll_seconds: float = 0.2,
    ) -> Envelope | None:
        """The first event of ``event_types`` (and cause ``caused_by``) within ``timeout`` s.

        ``ack=True`` consumes it; ``ack=False`` puts it back (a peek: the queue keeps the
        reply for a task retry). Other types and undecodable messages are acked and dropped,
        the queue being private; same-type replies to another request are left in place.
        """
        deadline = time.monotonic() + timeout
        channel = self.get_conn().default_channel
        while True:
            held: list[Message] = []
            try:
                found = self._scan(channel, queue, event_types, registry, caused_by, held)
                if found is not None:
                    envelope, message = found
                    if ack:
                        message.ack()
                    else:
                        held.append(message)
                    return envelope
            except Exception:
                self.close()
                raise
            finally:
                for message in held:
                    if not message.acknowledged:
                        message.reject(requeue=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(poll_seconds, remaining))

    @staticmethod
    def _scan(
        channel: Any,
        queue: str,
        event_types: Sequence[str],
        registry: EventRegistry,
        caused_by: str | None,
        held: list[Message],
    ) -> tuple[Envelope, Message] | None:
        while (raw := channel.basic_get(queue=queue, no_ack=False)) is not None:
            message: Message = channel.message_to_python(raw)
            try:
                envelope = from_amqp(message.body, message.headers, message.content_type, registry)
            except InvalidEvent as exc:
                log.warning("dropping an undecodable message from %s: %s", queue, exc)
                message.ack()
                continue
            if envelope.type not in event_types:
                log.info("ignoring %s on %s (not awaited)", envelope.type, queue)
                message.ack()
            elif caused_by is not None and envelope.causationid != caused_by:
                held.append(message)  # an answer to another request: leave it for its owner
            else:
                return envelope, message
        return None

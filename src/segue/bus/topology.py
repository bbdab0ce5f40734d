"""The RabbitMQ topology, declared by code; every declaration is idempotent.

- ``segue.events``: durable topic exchange; the routing key is the event type.
- one durable quorum queue per consuming service (``segue.<service>``) with an explicit delivery
  limit and at-least-once dead-lettering into ``segue.dead``;
- ``segue.<service>.retry``: a delayed retry path; messages wait ``retry_delay_ms`` there, then
  dead-letter back to the service queue through the default exchange;
- ``segue.<service>.parked``: poison messages, kept with the reason in headers (bound to
  ``segue.dead`` with the service queue's name);
- ``segue.correlation``: a headers exchange fed every event, so a bridge queue can bind to one
  correlation id (``cloudEvents_correlationid``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kombu import Connection, Exchange, Queue, binding

EVENTS = Exchange("segue.events", type="topic", durable=True)
DEAD = Exchange("segue.dead", type="direct", durable=True)
RETRY = Exchange("segue.retry", type="direct", durable=True)
CORRELATION = Exchange("segue.correlation", type="headers", durable=True)

DELIVERY_LIMIT = 5
RETRY_DELAY_MS = 1000
MAX_LENGTH = 200_000


def queue_name(service: str) -> str:
    """The main queue of a service.

    :param service: its name.
    """
    return f"segue.{service}"


def retry_queue_name(service: str) -> str:
    """The delay queue a service's messages wait in before a retry.

    :param service: its name.
    """
    return f"segue.{service}.retry"


def parking_queue_name(service: str) -> str:
    """Where a service's unhandleable messages are parked.

    :param service: its name.
    """
    return f"segue.{service}.parked"


@dataclass(frozen=True)
class ServiceQueues:
    """The three queues of one consuming service."""

    main: Queue
    retry: Queue
    parked: Queue


def service_queues(
    service: str,
    routing_keys: Sequence[str],
    *,
    delivery_limit: int = DELIVERY_LIMIT,
    retry_delay_ms: int = RETRY_DELAY_MS,
    max_length: int = MAX_LENGTH,
) -> ServiceQueues:
    """A service's quorum queue, its delay queue and its parking queue, with their bindings.

    :param service: its name.
    :param routing_keys: what its main queue binds.
    :param delivery_limit: redeliveries before the broker dead-letters a message.
    :param retry_delay_ms: how long a message waits in the delay queue.
    :param max_length: messages the main queue holds before it rejects publishes.
    """
    name = queue_name(service)
    quorum = {"x-queue-type": "quorum"}
    main = Queue(
        name,
        bindings=[_binding(key) for key in routing_keys],
        durable=True,
        queue_arguments={
            **quorum,
            "x-dead-letter-exchange": DEAD.name,
            "x-dead-letter-routing-key": name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": delivery_limit,
            "x-max-length": max_length,
        },
    )
    retry = Queue(
        retry_queue_name(service),
        exchange=RETRY,
        routing_key=name,
        durable=True,
        queue_arguments={
            **quorum,
            "x-message-ttl": retry_delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    parked = Queue(
        parking_queue_name(service),
        exchange=DEAD,
        routing_key=name,
        durable=True,
        queue_arguments=quorum,
    )
    return ServiceQueues(main, retry, parked)


def _binding(routing_key: str) -> binding:
    return binding(EVENTS, routing_key=routing_key)


def declare_exchanges(connection: Connection) -> None:
    """Declare the events, dead-letter, retry and correlation exchanges (idempotent).

    :param connection: the broker connection.
    """
    channel = connection.default_channel
    for exchange in (EVENTS, DEAD, RETRY, CORRELATION):
        exchange(channel).declare()
    # Every event also reaches the headers exchange, where bridge queues match a correlation id.
    CORRELATION(channel).bind_to(EVENTS, routing_key="#")


def declare_service(connection: Connection, queues: ServiceQueues) -> None:
    """Declare the exchanges and the service's three queues with their bindings.

    :param connection: the broker connection.
    :param queues: the service's queues.
    """
    declare_exchanges(connection)
    channel = connection.default_channel
    for queue in (queues.main, queues.retry, queues.parked):
        queue(channel).declare()


def backlog(connection: Connection, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare; raises if the queue does not exist)."""
    result = connection.default_channel.queue_declare(queue=queue, passive=True)
    return int(result.message_count)

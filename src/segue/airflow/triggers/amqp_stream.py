"""AmqpStreamProducer: the broker half of AmqpEventTrigger's shared stream (Airflow 3.3 ack mode).

It consumes a durable quorum queue ``segue.airflow.<name>`` (bound to ``segue.events`` with the
trigger's routing keys, declared here with its retry and parked queues) and hands each message
to the triggerer. A message is settled only in :meth:`advance`, which Airflow calls once every
subscriber moved past it and the trigger events derived from it are persisted:

- clean (accepted and persisted): ack;
- rejected by the filter (undecodable): parked with the reason (``segue.dead`` -> ``.parked``),
  then acked;
- failed (ack timeout, overflow) or nobody listening: requeued for redelivery.

A killed triggerer acks nothing, so RabbitMQ redelivers; the queue's delivery limit parks a
message that keeps coming back. All Kombu calls of one producer run on one dedicated thread
(py-amqp connections are not thread-safe), in short bounded waits, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer
from kombu import Connection, Consumer
from kombu.message import Message

from segue.airflow.hooks.amqp import AmqpHook, envelope_to_json
from segue.bus.parking import park
from segue.bus.publisher import Publisher
from segue.bus.topology import ServiceQueues, declare_service, service_queues
from segue.events.amqp import from_amqp
from segue.events.errors import InvalidEvent
from segue.imports import load_registry

T = TypeVar("T")


def service_name(name: str) -> str:
    """The bus service name of a watcher: its queue is ``segue.airflow.<name>``.

    :param name: the watcher's name.
    """
    return f"airflow.{name}"


@dataclass(frozen=True)
class Delivery:
    """The broker payload of one raw event: the message, and why it is invalid (if it is)."""

    message: Message
    invalid: InvalidEvent | None = None


class AmqpStreamProducer(SharedStreamProducer):
    """Reads one watcher's queue for every trigger sharing it; acks only what Airflow persisted."""

    def __init__(
        self,
        *,
        name: str,
        routing_keys: Sequence[str],
        amqp_conn_id: str,
        registry: str,
        prefetch: int = 50,
        poll_seconds: float = 1.0,
    ) -> None:
        """A producer of one watcher's queue (opened by ``open_stream``).

        :param name: the watcher's name (its queue is ``segue.airflow.<name>``).
        :param routing_keys: the event types the queue is bound to.
        :param amqp_conn_id: the Airflow connection to the broker.
        :param registry: ``module:attribute`` of the event registry that decodes messages.
        :param prefetch: unacked messages held at once.
        :param poll_seconds: how long each bounded wait for a message lasts.
        """
        self.name = name
        self.queues: ServiceQueues = service_queues(service_name(name), list(routing_keys))
        self.amqp_conn_id = amqp_conn_id
        self.registry = load_registry(registry)
        self.prefetch = prefetch
        self.poll_seconds = poll_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"amqp-{name}")
        self._conn: Connection | None = None
        self._consumer: Consumer | None = None
        self._received: list[Message] = []

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        params = await AmqpHook.aconnection_params(self.amqp_conn_id)
        await self._call(self._open, params.connect)
        while True:
            for message in await self._call(self._receive):
                yield self._decode(message)

    def _open(self, connect: Callable[[], Connection]) -> None:
        self._conn = connect()
        declare_service(self._conn, self.queues)
        self._consumer = Consumer(
            self._conn.channel(),
            queues=[self.queues.main],
            on_message=self._received.append,
            prefetch_count=self.prefetch,
            no_ack=False,
        )
        self._consumer.consume()

    def _receive(self) -> list[Message]:
        """Messages delivered within one short wait (heartbeats kept while idle)."""
        assert self._conn is not None
        self._conn.heartbeat_check()
        with contextlib.suppress(TimeoutError):
            self._conn.drain_events(timeout=self.poll_seconds)
        received = list(self._received)
        self._received.clear()  # the consumer's callback appends to this very list
        return received

    def _decode(self, message: Message) -> tuple[dict[str, Any], Delivery]:
        try:
            envelope = from_amqp(message.body, message.headers, message.content_type, self.registry)
        except InvalidEvent as exc:
            raw = {"invalid": {"code": exc.code, "detail": exc.detail}}
            return raw, Delivery(message, exc)
        return {"envelope": envelope_to_json(envelope)}, Delivery(message)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        await self._call(self._settle, list(batch))

    def _settle(self, batch: list[AdvanceItem]) -> None:
        for item in batch:
            delivery: Delivery = item.broker_payload
            outcome = item.outcome
            if outcome.rejected:
                invalid = delivery.invalid or InvalidEvent("invalid_payload", "rejected")
                assert self._conn is not None
                park(
                    Publisher(self._conn),
                    delivery.message,
                    service_name(self.name),
                    invalid.code,
                    invalid.detail,
                )
                delivery.message.ack()
            elif outcome.is_clean:
                delivery.message.ack()
            else:  # failed, or broadcast while nobody listened: let RabbitMQ redeliver
                delivery.message.reject(requeue=True)

    async def aclose(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.release()  # unsettled deliveries return to the queue
            self._conn = None

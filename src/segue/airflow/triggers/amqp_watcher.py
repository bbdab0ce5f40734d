"""AmqpEventTrigger: schedules DAGs from events on Segue's bus (``AssetWatcher``), at least once.

Every trigger with the same conn id, name and routing keys shares one consumer of the durable
queue ``segue.airflow.<name>`` through Airflow 3.3's shared streams in *ack mode*
(``create_shared_stream_producer``): a message is acked only after the asset event made from it
is persisted in Airflow's database (see :mod:`segue.airflow.triggers.amqp_stream`). The
community RabbitMQ provider acks on receipt, which loses a message if the triggerer dies before
handing it over; here RabbitMQ redelivers it. Consumers of the asset must therefore be
idempotent (the envelope id is in the asset event's ``extra["payload"]["id"]``), and one DAG run
may carry several asset events.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow.triggers.shared_stream import (
    AdvanceItem,
    AdvanceOutcome,
    reject_shared_stream_event,
)

from segue.airflow.hooks.amqp import DEFAULT_CONN_ID
from segue.airflow.triggers.amqp_stream import AmqpStreamProducer
from segue.imports import registry_path

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,100}$")


class AmqpEventTrigger(BaseEventTrigger):
    """Fire one TriggerEvent (payload: the envelope as JSON) per event of ``event_types``."""

    def __init__(
        self,
        *,
        name: str,
        routing_keys: Sequence[str],
        event_types: Sequence[str] | None = None,
        amqp_conn_id: str = DEFAULT_CONN_ID,
        registry: str | None = None,
        prefetch: int = 50,
        poll_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        if not NAME_PATTERN.match(name):
            raise ValueError(f"watcher name {name!r} must match {NAME_PATTERN.pattern}")
        self.name = name
        self.routing_keys = list(routing_keys)
        self.event_types = list(event_types) if event_types is not None else list(routing_keys)
        self.amqp_conn_id = amqp_conn_id
        self.registry = registry_path(registry)
        self.prefetch = prefetch
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "routing_keys": list(self.routing_keys),
                "event_types": list(self.event_types),
                "amqp_conn_id": self.amqp_conn_id,
                "registry": self.registry,
                "prefetch": self.prefetch,
                "poll_seconds": self.poll_seconds,
            },
        )

    def shared_stream_key(self) -> Hashable:
        return ("segue.amqp", self.amqp_conn_id, self.name, tuple(sorted(self.routing_keys)))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> AmqpStreamProducer:
        return AmqpStreamProducer(
            name=kwargs["name"],
            routing_keys=kwargs["routing_keys"],
            amqp_conn_id=kwargs.get("amqp_conn_id", DEFAULT_CONN_ID),
            registry=kwargs.get("registry"),
            prefetch=kwargs.get("prefetch", 50),
            poll_seconds=kwargs.get("poll_seconds", 1.0),
        )

    def _event_for(self, raw: dict[str, Any]) -> TriggerEvent | None:
        """The trigger event of one raw event; None to let it pass (another type)."""
        envelope = raw["envelope"]
        if envelope["type"] not in self.event_types:
            return None
        self.log.info(
            "%s %s for %s", envelope["type"], envelope["id"], envelope.get("correlationid")
        )
        return TriggerEvent(envelope)

    async def filter_shared_stream(
        self, shared_stream: AsyncIterator[Any]
    ) -> AsyncIterator[TriggerEvent]:
        async for raw in shared_stream:
            if "invalid" in raw:
                self.log.warning("parking an undecodable message: %s", raw["invalid"])
                reject_shared_stream_event()
                continue
            event = self._event_for(raw)
            if event is not None:
                yield event

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Standalone fallback (no shared stream): acks once the triggerer took the event,
        which is *before* it is persisted. The triggerer uses the shared stream instead."""
        producer = self.create_shared_stream_producer(self.serialize()[1])
        try:
            async for raw, delivery in producer.open_stream():
                if "invalid" in raw:
                    outcome = AdvanceOutcome(acked=0, failed=0, rejected=1)
                else:
                    event = self._event_for(raw)
                    if event is not None:
                        yield event
                    outcome = AdvanceOutcome(acked=1, failed=0)
                await producer.advance([AdvanceItem(delivery, outcome)])
        finally:
            await producer.aclose()

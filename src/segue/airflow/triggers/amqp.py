"""EventArrivedTrigger: wakes a deferred EventSensor when its reply is in the reply queue.

It only *peeks*: a matching message is read and put back (``ack=False``), so the reply stays in
the durable private queue whatever happens to the triggerer or the worker afterwards (a killed
triggerer, a failed resume, a task retry all find it again). The queue is deleted by whoever
records the outcome (see ``AmqpHook.delete_reply_queue``) or expires after a day.

Kombu is synchronous: each poll is one short ``basic_get`` scan in ``asyncio.to_thread``; the
waits between polls are ``asyncio.sleep``. The connection is resolved from the conn id in the
triggerer (``aget_connection``), so no password is stored in the trigger row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from segue.airflow.hooks.amqp import (
    DEFAULT_CONN_ID,
    AmqpHook,
    envelope_to_json,
)
from segue.imports import load_registry, registry_path


class EventArrivedTrigger(BaseTrigger):
    """Fires ``{"status": "arrived", "event": <envelope>}`` or ``{"status": "timeout", ...}``."""

    def __init__(
        self,
        *,
        queue: str,
        event_types: Sequence[str],
        correlation_id: str,
        deadline: str,
        caused_by: str | None = None,
        amqp_conn_id: str = DEFAULT_CONN_ID,
        registry: str | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        """A wait for one answer on a reply queue, until ``deadline``.

        :param queue: the reply queue to poll.
        :param event_types: the event types that answer.
        :param correlation_id: the conversation the answer must belong to.
        :param deadline: ISO time after which the trigger fires a timeout.
        :param caused_by: the id of the event asked with, if the answer must be caused by it.
        :param amqp_conn_id: the Airflow connection to the broker.
        :param registry: ``module:attribute`` of the event registry (default: from settings).
        :param poll_seconds: how long each bounded wait for a message lasts.
        """
        super().__init__()
        self.queue = queue
        self.event_types = list(event_types)
        self.correlation_id = correlation_id
        self.deadline = deadline
        self.caused_by = caused_by
        self.amqp_conn_id = amqp_conn_id
        self.registry = registry_path(registry)
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "queue": self.queue,
                "event_types": list(self.event_types),
                "correlation_id": self.correlation_id,
                "deadline": self.deadline,
                "caused_by": self.caused_by,
                "amqp_conn_id": self.amqp_conn_id,
                "registry": self.registry,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        registry = load_registry(self.registry)
        deadline = datetime.fromisoformat(self.deadline)
        hook = AmqpHook(params=await AmqpHook.aconnection_params(self.amqp_conn_id))
        try:
            while True:
                try:
                    envelope = await asyncio.to_thread(
                        hook.get_matching_event,
                        self.queue,
                        self.event_types,
                        registry,
                        0.0,
                        caused_by=self.caused_by,
                        ack=False,
                    )
                except Exception as exc:  # a broker blip: the hook reconnects on the next poll
                    self.log.warning("polling %s failed, will retry: %s", self.queue, exc)
                    envelope = None
                if envelope is not None:
                    self.log.info("%s arrived for %s", envelope.type, self.correlation_id)
                    yield TriggerEvent({"status": "arrived", "event": envelope_to_json(envelope)})
                    return
                if datetime.now(UTC) >= deadline:
                    yield TriggerEvent({"status": "timeout", "queue": self.queue})
                    return
                await asyncio.sleep(self.poll_seconds)
        finally:
            await asyncio.to_thread(hook.close)

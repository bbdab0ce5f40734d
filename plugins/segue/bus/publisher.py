"""Publishing with publisher confirms and mandatory routing.

``publish`` returns once the broker has confirmed the message; an unroutable message (no queue
bound for its routing key) or a nack raises ``PublishFailed`` instead of vanishing.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Exchange, Producer

from segue.bus.connection import RETRY_POLICY
from segue.bus.topology import EVENTS
from segue.events.amqp import AmqpMessage, to_amqp
from segue.events.envelope import Envelope


class PublishFailed(Exception):
    """The broker did not take responsibility for a message (unroutable, nacked, rejected)."""


class Publisher:
    """Publishes on one connection (one per thread), each message confirmed."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.connection.default_channel)
        return self._producer

    def publish_event(self, envelope: Envelope) -> None:
        self.publish(to_amqp(envelope))

    def publish(self, message: AmqpMessage, exchange: Exchange | str = EVENTS) -> None:
        self.publish_raw(
            message.body,
            exchange=exchange,
            routing_key=message.routing_key,
            headers=message.headers,
            properties=message.properties,
        )

    def publish_raw(
        self,
        body: bytes,
        *,
        exchange: Exchange | str,
        routing_key: str,
        headers: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        mandatory: bool = True,
    ) -> None:
        """Publish bytes as they are (content type from ``properties``) and wait for the confirm."""
        props = dict(properties or {})
        props.setdefault("content_type", "application/octet-stream")
        props.setdefault("delivery_mode", 2)
        try:
            self.producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                headers=headers or {},
                mandatory=mandatory,
                retry=True,
                retry_policy=RETRY_POLICY,
                **props,
            )
        except self.connection.connection_errors:
            self._producer = None
            raise
        except Exception as exc:  # py-amqp raises its own errors for returns and nacks
            if isinstance(exc, self.connection.connection_errors):
                raise
            raise PublishFailed(f"{routing_key}: {exc}") from exc

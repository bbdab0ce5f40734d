"""Publishing with publisher confirms and mandatory routing.

``publish`` returns once the broker has confirmed the message; an unroutable message (no queue
bound for its routing key) or a nack raises ``PublishFailed`` instead of vanishing.
``publish_many`` (the relay's path) sends a whole batch, then waits once until the broker has
confirmed all of it: the same guarantee without a round trip per message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import amqp
from amqp import spec
from kombu import Connection, Exchange, Producer

from segue.bus.connection import RETRY_POLICY
from segue.bus.topology import EVENTS
from segue.events.amqp import AmqpMessage, to_amqp
from segue.events.envelope import Envelope

CONFIRM_TIMEOUT_SECONDS = 30.0  # no confirm for this long: the connection is treated as lost


class PublishFailed(Exception):
    """The broker did not take responsibility for a message (unroutable, nacked, rejected)."""


class Publisher:
    """Publishes on one connection (one per thread), each message confirmed."""

    def __init__(self, connection: Connection) -> None:
        """A publisher over one connection (not thread-safe: one per thread).

        :param connection: the Kombu connection to publish on.
        """
        self.connection = connection
        self._producer: Producer | None = None
        # publish_many's own channel in confirm mode, and how many messages it has published:
        # the broker numbers a confirm channel's publishes 1, 2, ... (the confirms' tags).
        self._confirm_channel: Any = None
        self._published_on_channel = 0

    @property
    def producer(self) -> Producer:
        """The Kombu producer on the connection's default channel, made on first use."""
        if self._producer is None:
            self._producer = Producer(self.connection.default_channel)
        return self._producer

    def publish_event(self, envelope: Envelope) -> None:
        """Publish one event to the events exchange, confirmed.

        :param envelope: the event.
        """
        self.publish(to_amqp(envelope))

    def publish(self, message: AmqpMessage, exchange: Exchange | str = EVENTS) -> None:
        """Publish one wire message, confirmed; unroutable raises.

        :param message: the encoded event.
        :param exchange: where to (default: the events exchange).
        """
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

    def publish_many(
        self,
        messages: Sequence[AmqpMessage],
        exchange: Exchange | str = EVENTS,
        *,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
    ) -> None:
        """Publish ``messages`` in order (mandatory, persistent), then await all their confirms.

        Returns once the broker confirmed every one; raises ``PublishFailed`` when one was
        unroutable or nacked (some may have been published: the caller keeps its rows and
        publishes again, consumers absorb the duplicates). The channel is dropped after any
        failure, so confirm numbering starts afresh on the next call.
        """
        if not messages:
            return
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        try:
            channel = self._channel_in_confirm_mode()
            first = self._published_on_channel + 1
            self._published_on_channel += len(messages)
            outstanding = set(range(first, self._published_on_channel + 1))
            nacked: list[int] = []

            def on_ack(tag: int, multiple: bool) -> None:
                if multiple:
                    outstanding.difference_update(range(first, tag + 1))
                else:
                    outstanding.discard(tag)

            def on_nack(tag: int, multiple: bool) -> None:
                nacked.append(tag)
                on_ack(tag, multiple)

            channel.events["basic_ack"].add(on_ack)
            channel.events["basic_nack"].add(on_nack)
            try:
                for message in messages:
                    channel._basic_publish(  # the non-waiting publish; confirms awaited below
                        _amqp_message(message),
                        exchange=name,
                        routing_key=message.routing_key,
                        mandatory=True,
                    )
                while outstanding and not nacked:
                    channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=confirm_timeout)
            finally:
                channel.events["basic_ack"].discard(on_ack)
                channel.events["basic_nack"].discard(on_nack)
        except Exception as exc:
            self._drop_confirm_channel()
            if isinstance(exc, (*self.connection.connection_errors, OSError)):
                raise
            raise PublishFailed(f"batch of {len(messages)}: {exc!r}") from exc
        if nacked:
            self._drop_confirm_channel()
            raise PublishFailed(f"the broker nacked {len(nacked)} of {len(messages)} messages")

    def _channel_in_confirm_mode(self) -> Any:
        if self._confirm_channel is None:
            channel = self.connection.channel()
            channel.confirm_select()
            self._confirm_channel, self._published_on_channel = channel, 0
        return self._confirm_channel

    def _drop_confirm_channel(self) -> None:
        channel, self._confirm_channel = self._confirm_channel, None
        if channel is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                channel.close()


def _amqp_message(message: AmqpMessage) -> amqp.Message:
    properties = dict(message.properties)
    properties.setdefault("content_type", "application/octet-stream")
    properties.setdefault("delivery_mode", 2)
    return amqp.Message(message.body, application_headers=message.headers or {}, **properties)

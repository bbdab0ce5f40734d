"""PublishEventOperator: publish one validated event on Segue's bus, with a publisher confirm.

The payload is validated against the registry's model of ``event_type`` (a bad payload fails the
task at once, no retry). The event id is derived from dag id, run id, task id and map index, so
every retry publishes the *same* event and consumers' inboxes drop the duplicates. With
``await_reply_types`` the reply queue is declared before publishing, so a reply cannot arrive
before anyone listens. The event id is the task's return value (XCom): pass it to
``EventSensor(caused_by=...)``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException
from opentelemetry.trace import SpanKind

from segue import tracing
from segue.airflow.hooks.amqp import DEFAULT_CONN_ID, AmqpHook
from segue.events.envelope import Envelope
from segue.events.errors import InvalidEvent
from segue.events.payload import EventPayload
from segue.events.registry import EventRegistry
from segue.imports import load_registry, registry_path


def stable_event_id(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The same id on every try of one task instance (uuid5; the try number is left out).

    :param dag_id: the task instance's DAG.
    :param run_id: its DAG run.
    :param task_id: its task.
    :param map_index: its map index (-1 when not mapped).
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow:{dag_id}/{run_id}/{task_id}/{map_index}"))


def build_payload(
    registry: EventRegistry, event_type: str, data: Mapping[str, Any], version: int | None = None
) -> EventPayload:
    """Validate ``data`` as ``event_type`` at ``version`` (default: the newest registered)."""
    if version is None:
        versions = [m.schema_version for m in registry if m.event_type == event_type]
        if not versions:
            raise InvalidEvent("unknown_type", f"unknown event type {event_type!r}")
        version = max(versions)
    return registry.parse(event_type, version, dict(data))


class PublishEventOperator(BaseOperator):
    """Publish ``event_type`` with ``data`` about ``subject`` (an order id)."""

    template_fields: Sequence[str] = ("event_type", "subject", "correlation_id", "data")
    ui_color = "#f0e6d8"

    def __init__(
        self,
        *,
        event_type: str,
        data: dict[str, Any] | str,
        subject: str,
        correlation_id: str | None = None,
        await_reply_types: Sequence[str] = (),
        schema_version: int | None = None,
        source: str | None = None,
        amqp_conn_id: str = DEFAULT_CONN_ID,
        registry: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.event_type = event_type
        self.data = data
        self.subject = subject
        self.correlation_id = correlation_id
        self.await_reply_types = list(await_reply_types)
        self.schema_version = schema_version
        self.source = source
        self.amqp_conn_id = amqp_conn_id
        self.registry = registry_path(registry)

    def build_envelope(self, context: Context) -> Envelope:
        """The envelope this task instance publishes; its id is the same on every try.

        :param context: the task's Airflow context (its ``ti`` names the event id).
        """
        data = json.loads(self.data) if isinstance(self.data, str) else self.data
        try:
            payload = build_payload(
                load_registry(self.registry), self.event_type, data, self.schema_version
            )
        except InvalidEvent as exc:
            raise AirflowFailException(f"invalid {self.event_type}: {exc}") from exc
        ti = context["ti"]
        return Envelope.create(
            payload,
            source=self.source or f"airflow/{ti.dag_id}",
            subject=str(self.subject),
            correlation_id=str(self.correlation_id) if self.correlation_id else None,
            event_id=stable_event_id(ti.dag_id, ti.run_id, ti.task_id, ti.map_index),
        )

    def execute(self, context: Context) -> str:
        order_id = str(self.correlation_id or self.subject)
        tracing.ensure_configured("airflow-task")
        tracing.link_enclosing(order_id)  # Airflow's task span points at the order's trace
        name = f"{context['ti'].dag_id} {self.task_id}"
        try:  # the event's traceparent names this span, the child of the order's root
            with tracing.span(name, order_id=order_id, kind=SpanKind.PRODUCER):
                return self._publish(context)
        finally:
            tracing.flush()  # the task process may end without running atexit hooks

    def _publish(self, context: Context) -> str:
        """Build, publish (with a reply queue when asked) and push the correlation id.

        :param context: the task's Airflow context.
        """
        envelope = self.build_envelope(context)
        with AmqpHook(self.amqp_conn_id) as hook:
            if self.await_reply_types:
                queue = hook.declare_reply_queue(envelope.correlationid, self.await_reply_types)
                self.log.info("reply queue %s is ready", queue)
            hook.publish_event(envelope)
        self.log.info(
            "published %s %s (correlation id %s, confirmed)",
            envelope.type,
            envelope.id,
            envelope.correlationid,
        )
        context["ti"].xcom_push(key="correlation_id", value=envelope.correlationid)
        return envelope.id

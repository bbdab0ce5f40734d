"""EventSensor: wait for a reply event (one of ``event_types``) for a correlation id.

Deferrable by default: ``execute`` declares the reply queue, looks once, then defers to
:class:`EventArrivedTrigger` so no worker slot is held while the reply is on its way. The reply
(the envelope as a dict, ``data`` included) is the task's return value (XCom). A ChargeFailed
is a reply like any other: the sensor succeeds and the DAG decides. Only the absence of a
reply by ``timeout`` fails it, naming the correlation id, the types and the time waited.

Reading is a peek (the message stays in its queue), so a retry or a cleared task finds the same
reply again; delete the queue once the outcome is recorded (``AmqpHook.delete_reply_queue``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from segue.airflow.hooks.amqp import (
    DEFAULT_CONN_ID,
    AmqpHook,
    envelope_from_json,
    envelope_to_json,
)
from segue.airflow.triggers.amqp import EventArrivedTrigger
from segue.events.envelope import Envelope
from segue.imports import load_registry, registry_path

TRIGGER_GRACE_SECONDS = 60  # the trigger fires its own timeout; Airflow's is a backstop


class EventSensor(BaseSensorOperator):
    """Succeed with the first event of ``event_types`` for ``correlation_id``."""

    template_fields: Sequence[str] = ("correlation_id", "event_types", "caused_by")
    ui_color = "#d8ecf0"

    def __init__(
        self,
        *,
        correlation_id: str,
        event_types: Sequence[str],
        caused_by: str | None = None,
        amqp_conn_id: str = DEFAULT_CONN_ID,
        registry: str | None = None,
        deferrable: bool = True,
        poll_seconds: float = 1.0,
        timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poll_seconds, **kwargs)
        self.correlation_id = correlation_id
        self.event_types = list(event_types)
        self.caused_by = caused_by
        self.amqp_conn_id = amqp_conn_id
        self.registry = registry_path(registry)
        self.deferrable = deferrable
        self.poll_seconds = poll_seconds

    def _look(self) -> tuple[str, Envelope | None]:
        with AmqpHook(self.amqp_conn_id) as hook:
            queue = hook.declare_reply_queue(str(self.correlation_id), self.event_types)
            envelope = hook.get_matching_event(
                queue,
                self.event_types,
                load_registry(self.registry),
                caused_by=self.caused_by or None,
                ack=False,
            )
        return queue, envelope

    def poke(self, context: Context) -> PokeReturnValue:
        _, envelope = self._look()
        if envelope is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._arrived(envelope))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        queue, envelope = self._look()
        if envelope is not None:
            return self._arrived(envelope)
        deadline = datetime.now(UTC) + timedelta(seconds=self.timeout)
        self.log.info(
            "waiting for %s on %s (correlation id %s): deferring",
            ", ".join(self.event_types),
            queue,
            self.correlation_id,
        )
        self.defer(
            trigger=EventArrivedTrigger(
                queue=queue,
                event_types=self.event_types,
                correlation_id=str(self.correlation_id),
                deadline=deadline.isoformat(),
                caused_by=self.caused_by or None,
                amqp_conn_id=self.amqp_conn_id,
                registry=self.registry,
                poll_seconds=self.poll_seconds,
            ),
            method_name="execute_complete",
            kwargs={"started": datetime.now(UTC).isoformat()},
            timeout=timedelta(seconds=self.timeout + TRIGGER_GRACE_SECONDS),
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any], started: str | None = None
    ) -> dict[str, Any]:
        if event.get("status") != "arrived":
            waited = (
                (datetime.now(UTC) - datetime.fromisoformat(started)).total_seconds()
                if started
                else self.timeout
            )
            raise AirflowSensorTimeout(
                f"no {' or '.join(self.event_types)} for correlation id {self.correlation_id} "
                f"after {waited:.0f}s (timeout {self.timeout:.0f}s, queue {event.get('queue')})"
            )
        return self._arrived(envelope_from_json(event["event"], load_registry(self.registry)))

    def _arrived(self, envelope: Envelope) -> dict[str, Any]:
        self.log.info(
            "%s arrived for correlation id %s (event %s)",
            envelope.type,
            envelope.correlationid,
            envelope.id,
        )
        return envelope_to_json(envelope)

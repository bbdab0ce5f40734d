"""The CloudEvents 1.0 envelope of every event, with correlation, causation and trace context.

Attributes follow the CloudEvents spec (``id``, ``source``, ``type``, ``specversion``, ``time``,
``subject``, ``datacontenttype``, ``dataschema``) plus the extensions ``correlationid``,
``causationid``, ``traceparent`` (W3C Trace Context) and ``schemaversion``.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from segue import tracing
from segue.events.payload import EventPayload

SPEC_VERSION = "1.0"
JSON = "application/json"
TRACEPARENT = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


def new_traceparent(trace_id: str | None = None) -> str:
    """A W3C ``traceparent`` for a new span, in the given trace or a new one.

    :param trace_id: the trace to continue (None: a new one).
    """
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str) -> str:
    """The trace id in a W3C ``traceparent``.

    :param traceparent: ``00-<trace>-<span>-<flags>``.
    """
    return traceparent.split("-")[1]


class Envelope(BaseModel):
    """One event: CloudEvents attributes around a typed payload (``data``)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    specversion: Literal["1.0"] = SPEC_VERSION
    time: datetime
    subject: str = Field(min_length=1, max_length=200, description="The order id.")
    datacontenttype: str = JSON
    dataschema: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:", description="Absolute URI.")
    schemaversion: int = Field(ge=1)
    correlationid: str = Field(min_length=1, max_length=200)
    causationid: str | None = Field(default=None, max_length=200)
    traceparent: str = Field(pattern=TRACEPARENT)
    data: EventPayload

    @classmethod
    def create(
        cls,
        data: EventPayload,
        *,
        source: str,
        subject: str,
        correlation_id: str | None = None,
        caused_by: Envelope | None = None,
        event_id: str | None = None,
    ) -> Envelope:
        """A new event; ``caused_by`` passes on its correlation id and trace and is its cause.

        An event with no cause is in the trace of its correlation id (the order's, derived from
        it: :func:`segue.tracing.order_trace_id`). Its ``traceparent`` names the span open now
        when that span is in the same trace (the handler's, the step's), else a new span id.
        """
        if caused_by is not None:
            correlation_id = correlation_id or caused_by.correlationid
            trace_id = trace_id_of(caused_by.traceparent)
        else:
            trace_id = tracing.order_trace_id(correlation_id or subject)
        traceparent = tracing.current_traceparent(trace_id) or new_traceparent(trace_id)
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=data.event_type,
            time=datetime.now(UTC),
            subject=subject,
            dataschema=data.schema_uri(),
            schemaversion=data.schema_version,
            correlationid=correlation_id or subject,
            causationid=caused_by.id if caused_by is not None else None,
            traceparent=traceparent,
            data=data,
        )

    def log_context(self) -> dict[str, str]:
        """The fields every structured log line about this event carries."""
        return {
            "event_id": self.id,
            "event_type": self.type,
            "subject": self.subject,
            "correlation_id": self.correlationid,
            "causation_id": self.causationid or "",
            "trace_id": trace_id_of(self.traceparent),
        }

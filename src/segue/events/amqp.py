"""The AMQP 0-9-1 binding of the envelope: attributes in headers and properties, JSON body.

Headers use the CloudEvents AMQP binding's ``cloudEvents:`` prefix. The standard properties
(``message_id``, ``correlation_id``, ``type``, ``content_type``, ``timestamp``, ``app_id``) repeat
the main attributes so plain AMQP tools show them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from segue.events.envelope import JSON, Envelope, new_traceparent
from segue.events.errors import InvalidEvent
from segue.events.registry import EventRegistry

PREFIX = "cloudEvents:"
MAX_BODY_BYTES = 256 * 1024
ATTRIBUTES = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "dataschema",
    "schemaversion",
    "correlationid",
    "causationid",
    "traceparent",
)
REQUIRED = ("id", "source", "type", "specversion", "time", "subject", "schemaversion")


@dataclass(frozen=True)
class AmqpMessage:
    """What goes on the wire: routing key, body, headers and message properties."""

    routing_key: str
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]


def to_amqp(envelope: Envelope) -> AmqpMessage:
    """Encode an event for the broker: attributes in headers and properties, data as JSON.

    :param envelope: the event.
    """
    attributes = envelope.model_dump(mode="json", exclude={"data", "datacontenttype"})
    headers = {PREFIX + name: value for name, value in attributes.items() if value is not None}
    body = envelope.data.model_dump_json().encode()
    properties = {
        "message_id": envelope.id,
        "correlation_id": envelope.correlationid,
        "type": envelope.type,
        "content_type": JSON,
        "content_encoding": "utf-8",
        "timestamp": int(envelope.time.timestamp()),
        "app_id": envelope.source,
        "delivery_mode": 2,
    }
    return AmqpMessage(envelope.type, body, headers, properties)


def attributes_from_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """The CloudEvents attributes in ``headers`` (for logs of messages that fail to decode)."""
    found = {}
    for name, value in (headers or {}).items():
        if isinstance(name, str) and name.startswith(PREFIX):
            found[name[len(PREFIX) :]] = value
    return found


def from_amqp(
    body: bytes,
    headers: dict[str, Any] | None,
    content_type: str | None,
    registry: EventRegistry,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Envelope:
    """Decode and validate one message; InvalidEvent says why it is not a valid event.

    :param body: the message body (JSON data).
    :param headers: the message headers (the attributes).
    :param content_type: must be JSON.
    :param registry: decodes the data by type and version.
    :param max_body_bytes: a larger body is refused.
    """
    if len(body) > max_body_bytes:
        raise InvalidEvent("oversized_body", f"{len(body)} bytes > limit {max_body_bytes}")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise InvalidEvent("wrong_content_type", f"{content_type!r}, expected {JSON!r}")
    attributes = attributes_from_headers(headers)
    missing = [name for name in REQUIRED if attributes.get(name) in (None, "")]
    if missing:
        raise InvalidEvent("missing_attribute", f"header {PREFIX}{missing[0]} is missing")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent("bad_json", str(exc)) from exc
    try:
        version = int(attributes["schemaversion"])
    except (TypeError, ValueError) as exc:
        raise InvalidEvent("unsupported_version", f"{attributes['schemaversion']!r}") from exc
    payload = registry.parse(str(attributes["type"]), version, data)
    values = {name: attributes.get(name) for name in ATTRIBUTES}
    values["dataschema"] = values["dataschema"] or payload.schema_id()
    values["correlationid"] = values["correlationid"] or values["subject"]
    values["traceparent"] = values["traceparent"] or new_traceparent()
    if isinstance(values["time"], datetime):
        values["time"] = values["time"].isoformat()
    try:
        return Envelope(**values, datacontenttype=JSON, data=payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidEvent("invalid_attribute", f"{where}: {first['msg']}") from exc

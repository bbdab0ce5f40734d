"""The AMQP 0-9-1 binding of the envelope (CloudEvents 1.0 AMQP protocol binding).

On output Segue writes **binary mode** with the binding's current ``cloudEvents_`` header prefix:
attributes in headers, the JSON ``data`` as the body, ``content_type`` application/json. The
standard properties (``message_id``, ``correlation_id``, ``type``, ``content_type``,
``timestamp``, ``app_id``) repeat the main attributes so plain AMQP tools show them.

On input it accepts what CloudEvents SDKs send: binary mode with either prefix (``cloudEvents_``
or the older ``cloudEvents:``) and **structured mode** (``application/cloudevents+json``: the
whole event, attributes and ``data``, as one JSON object). ``specversion`` must be "1.0"; ``time``
may be a timestamp, an ISO 8601 string or AMQP milliseconds since the epoch. Segue's extension
attributes ``schemaversion``, ``correlationid``, ``causationid`` and ``traceparent`` travel as
further attributes; ``schemaversion`` is required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from segue.events.envelope import JSON, SPEC_VERSION, Envelope, new_traceparent
from segue.events.errors import InvalidEvent
from segue.events.registry import EventRegistry

PREFIX = "cloudEvents_"  # what Segue writes
LEGACY_PREFIX = "cloudEvents:"  # also read: the binding's older prefix
STRUCTURED = "application/cloudevents+json"
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
    """The message of ``envelope`` in binary mode with the ``cloudEvents_`` prefix."""
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
    """The CloudEvents attributes in ``headers``, under either prefix (``cloudEvents_`` wins).

    :param headers: AMQP headers of a message in binary mode (None: none).
    """
    found: dict[str, Any] = {}
    for prefix in (LEGACY_PREFIX, PREFIX):
        for name, value in (headers or {}).items():
            if isinstance(name, str) and name.startswith(prefix):
                found[name[len(prefix) :]] = value
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

    :param body: the message body (JSON data in binary mode, the whole event in structured).
    :param headers: the AMQP headers (binary mode's attributes).
    :param content_type: the ``content_type`` property, which tells the mode.
    :param registry: the event types that may be decoded, with their payload models.
    :param max_body_bytes: larger bodies are refused before parsing.
    """
    if len(body) > max_body_bytes:
        raise InvalidEvent("oversized_body", f"{len(body)} bytes > limit {max_body_bytes}")
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type == STRUCTURED:
        attributes, data = _structured(body)
        where = "attribute"
    elif media_type == JSON:
        attributes, data = attributes_from_headers(headers), None
        where = f"header {PREFIX}"
    else:
        raise InvalidEvent(
            "wrong_content_type", f"{content_type!r}, expected {JSON!r} or {STRUCTURED!r}"
        )
    missing = [name for name in REQUIRED if attributes.get(name) in (None, "")]
    if missing:
        raise InvalidEvent("missing_attribute", f"{where}{missing[0]} is missing")
    if str(attributes["specversion"]) != SPEC_VERSION:
        raise InvalidEvent(
            "unsupported_specversion",
            f"specversion {attributes['specversion']!r}; only {SPEC_VERSION!r} is supported",
        )
    if data is None:
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
    if not _absolute_uri(values["dataschema"]):  # absent, or relative as Segue wrote it before
        values["dataschema"] = payload.schema_uri()
    values["correlationid"] = values["correlationid"] or values["subject"]
    values["traceparent"] = values["traceparent"] or new_traceparent()
    values["time"] = _time(values["time"])
    try:
        return Envelope(**values, datacontenttype=JSON, data=payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidEvent("invalid_attribute", f"{where}: {first['msg']}") from exc


def _structured(body: bytes) -> tuple[dict[str, Any], Any]:
    """Attributes and data of a structured-mode body (JSON data only, not ``data_base64``)."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent("bad_json", str(exc)) from exc
    if not isinstance(event, dict):
        raise InvalidEvent("bad_json", "a structured event must be a JSON object")
    if "data_base64" in event:
        raise InvalidEvent("wrong_content_type", "data_base64: only JSON data is accepted")
    content = str(event.get("datacontenttype") or JSON).split(";")[0].strip().lower()
    if content != JSON:
        raise InvalidEvent("wrong_content_type", f"datacontenttype {content!r}, expected {JSON!r}")
    if "data" not in event:
        raise InvalidEvent("missing_attribute", "data is missing")
    attributes = {name: value for name, value in event.items() if name != "data"}
    return attributes, event["data"]


def _time(value: Any) -> Any:
    """``time`` as ISO 8601: AMQP gives datetimes, SDKs may send epoch milliseconds."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC).isoformat()
    return value


def _absolute_uri(value: Any) -> bool:
    return isinstance(value, str) and bool(urlsplit(value).scheme)

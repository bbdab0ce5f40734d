"""Parking and delayed retry: where a message goes when it cannot be handled now.

A parked message keeps its body, properties and headers, plus headers saying why, by whom and
when; ``segue events parked`` lists them and ``segue events replay --from-parking`` moves them
back once the cause is fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kombu.message import Message

from segue.bus.publisher import Publisher
from segue.bus.topology import DEAD, RETRY, queue_name

PARKED_CODE = "x-segue-parked-code"
PARKED_REASON = "x-segue-parked-reason"
PARKED_BY = "x-segue-parked-by"
PARKED_AT = "x-segue-parked-at"
ORIGINAL_ROUTING_KEY = "x-segue-original-routing-key"
ATTEMPT = "x-segue-attempt"
PARKING_HEADERS = (PARKED_CODE, PARKED_REASON, PARKED_BY, PARKED_AT, ORIGINAL_ROUTING_KEY)

REASON_MAX_CHARS = 2000


def _copy(message: Message, extra_headers: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    headers = {**(message.headers or {}), **extra_headers}
    properties = {
        key: value
        for key, value in message.properties.items()
        if key not in ("application_headers", "delivery_info")
    }
    properties.setdefault("content_type", message.content_type or "application/octet-stream")
    return headers, properties


def park(publisher: Publisher, message: Message, service: str, code: str, reason: str) -> None:
    """Publish ``message`` to the service's parking queue with the reason (confirmed)."""
    headers, properties = _copy(
        message,
        {
            PARKED_CODE: code,
            PARKED_REASON: reason[:REASON_MAX_CHARS],
            PARKED_BY: service,
            PARKED_AT: datetime.now(UTC).isoformat(),
            ORIGINAL_ROUTING_KEY: message.delivery_info.get("routing_key", ""),
        },
    )
    publisher.publish_raw(
        message.body,
        exchange=DEAD,
        routing_key=queue_name(service),
        headers=headers,
        properties=properties,
    )


def attempt_of(message: Message) -> int:
    """How many times this message was already handed back for a delayed retry.

    :param message: a delivered message.
    """
    try:
        return int((message.headers or {}).get(ATTEMPT, 0))
    except (TypeError, ValueError):
        return 0


def retry_later(publisher: Publisher, message: Message, service: str) -> None:
    """Send ``message`` through the service's delay queue, counting the attempt (confirmed)."""
    headers, properties = _copy(message, {ATTEMPT: attempt_of(message) + 1})
    publisher.publish_raw(
        message.body,
        exchange=RETRY,
        routing_key=queue_name(service),
        headers=headers,
        properties=properties,
    )

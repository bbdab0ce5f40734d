"""How instances and audit records look outside the store: JSON-ready, secrets masked.

Order data carries the raw card number; the pages and their JSON twins show only its last
four digits (people and scripts reading sagas never need more).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi.encoders import jsonable_encoder

from segue.statemachine.store import Instance

SECRET_KEYS = frozenset({"card_number", "pan", "cvv", "cvc", "card_cvc", "password", "secret"})


def redact(value: Any) -> Any:
    """``value`` with the values of secret-looking keys masked, at any depth."""
    if isinstance(value, dict):
        return {
            key: _mask(item) if key in SECRET_KEYS else redact(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def _mask(value: Any) -> str:
    text = str(value)
    return "•" * max(len(text) - 4, 0) + text[-4:] if len(text) > 4 else "••••"


def instance_json(instance: Instance) -> dict[str, Any]:
    """An instance as JSON values, its data and context redacted (no card numbers leave).

    :param instance: the saga instance.
    """
    data = asdict(instance)
    data["data"] = redact(instance.data)
    data["context"] = redact(instance.context)
    data["final"] = instance.final
    return jsonable_encoder(data)


def trail_json(trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An audit trail as JSON values.

    :param trail: the instance's audit records, oldest first.
    """
    return jsonable_encoder(trail)


def timestamp(value: datetime | None) -> str:
    """A compact UTC time for tables (``2026-11-25 20:14:03``).

    :param value: the time (naive ones are shown as is).
    """
    if value is None:
        return ""
    if value.tzinfo is not None:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.strftime("%Y-%m-%d %H:%M:%S")

"""A readable timeline of one order's events, for a terminal.

Each line: offset from the first event, short type, source, short event id, the short id of
the event that caused it, and the payload's key fields (money stays the string it was sent as).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from segue.eventlog.store import EventLogRecord

SHORT_ID = 8
MAX_FIELDS_CHARS = 100
OMITTED = frozenset({"order_id"})  # already in the heading
MASKED = frozenset({"card_number"})


def short_id(event_id: str | None) -> str:
    """The first characters of an event id, enough to tell events apart in a listing.

    :param event_id: the id (None shows as empty).
    """
    return (event_id or "")[:SHORT_ID]


def offset(seconds: float) -> str:
    """``+0.120s``, ``+1m02.500s``: time since the first event.

    :param seconds: since the first event.
    """
    if seconds < 60:
        return f"+{seconds:.3f}s"
    minutes, rest = divmod(seconds, 60)
    return f"+{int(minutes)}m{rest:06.3f}s"


def key_fields(payload: dict[str, Any]) -> str:
    """``amount=49.99 currency=USD items=2``: scalars, nested models flattened, lists counted.

    :param payload: the event's data.
    """
    parts: list[str] = []
    for name, value in _flatten(payload):
        if name in OMITTED:
            continue
        if name in MASKED and isinstance(value, str):
            value = "*" * max(len(value) - 4, 0) + value[-4:]
        parts.append(f"{name}={value}")
    text = " ".join(parts)
    return text if len(text) <= MAX_FIELDS_CHARS else text[: MAX_FIELDS_CHARS - 1] + "…"


def _flatten(payload: dict[str, Any], depth: int = 0) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name, value in payload.items():
        if isinstance(value, dict):
            if depth == 0:  # e.g. OrderPlaced.order; deeper models (addresses) are left out
                found += _flatten(value, depth + 1)
        elif isinstance(value, list):
            found.append((name, len(value)))
        elif value is not None:
            found.append((name, value))
    return found


def render_timeline(order_id: str, records: Sequence[EventLogRecord]) -> str:
    """The timeline as text; an explicit line when the log holds nothing for ``order_id``."""
    if not records:
        return f"No events recorded for {order_id}."
    first = records[0].time
    span = (records[-1].time - first).total_seconds()
    lines = [f"Order {order_id}: {len(records)} events over {offset(span)[1:]}"]
    rows = [
        (
            offset((record.time - first).total_seconds()),
            record.short_type,
            record.source,
            short_id(record.event_id),
            f"<- {short_id(record.causation_id)}" if record.causation_id else "",
            key_fields(record.payload),
        )
        for record in records
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        lines.append(("  " + "  ".join([*cells, row[5]])).rstrip())
    return "\n".join(lines)

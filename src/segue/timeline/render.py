"""A timeline for a terminal (one line per entry) and as JSON (for scripts and the plugin)."""

from __future__ import annotations

from typing import Any

from segue.timeline.model import TimedEntry, Timeline
from segue.timeline.steps import path_steps

MAX_ERROR_CHARS = 160


def seconds(value: float | None) -> str:
    """``+0.120s``, ``+1m02.500s``; empty for None.

    :param value: a number of seconds.
    """
    if value is None:
        return ""
    if value < 60:
        return f"+{value:.3f}s"
    minutes, rest = divmod(value, 60)
    return f"+{int(minutes)}m{rest:06.3f}s"


def describe(timed: TimedEntry) -> str:
    """The entry's title with its state, duration, actor and error, on one line.

    :param timed: an entry of the timeline.
    """
    entry = timed.entry
    parts = [entry.title]
    if entry.state:
        parts.append(f"[{entry.state}]")
    if entry.duration_seconds is not None:
        parts.append(f"took {entry.duration_seconds:.3f}s")
    if entry.actor:
        parts.append(f"by {entry.actor}")
    if entry.error:
        error = " ".join(entry.error.split())
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        parts.append(f"error: {error}")
    return " ".join(parts)


def render_text(timeline: Timeline) -> str:
    """The timeline as text: a heading, then time, offsets, source, kind and what happened.

    :param timeline: the merged timeline.
    """
    count = sum(1 for timed in timeline.entries if not timed.entry.missing)
    lines = [f"Order {timeline.subject}: {count} entries"]
    if timeline.missing:
        lines[0] += f" (missing: {', '.join(timeline.missing)})"
    rows = [
        (
            timed.entry.at.strftime("%H:%M:%S.%f")[:-3] if timed.entry.at else "?",
            seconds(timed.since_first_seconds),
            seconds(timed.since_previous_seconds),
            timed.entry.source,
            "MISSING" if timed.entry.missing else timed.entry.kind,
            describe(timed),
        )
        for timed in timeline.entries
    ]
    steps = path_steps(timeline)
    if steps:
        lines.append("  path: " + " > ".join(f"[{s.name}]" if s.current else s.name for s in steps))
    if not rows:
        return "\n".join(lines)
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        lines.append(("  " + "  ".join([*cells, row[5]])).rstrip())
    return "\n".join(lines)


def timeline_json(timeline: Timeline) -> dict[str, Any]:
    """The timeline as JSON-ready data: subject, missing parts, the path's steps (one current)
    and the flattened entries.

    :param timeline: the merged timeline.
    """
    return {
        "order_id": timeline.subject,
        "missing": list(timeline.missing),
        "steps": [step.model_dump(mode="json") for step in path_steps(timeline)],
        "entries": [
            {
                **timed.entry.model_dump(mode="json"),
                "since_previous_seconds": timed.since_previous_seconds,
                "since_first_seconds": timed.since_first_seconds,
            }
            for timed in timeline.entries
        ],
    }

"""Merge the entries of several sources into one :class:`Timeline`.

Each source is read on its own: one that raises adds a missing-part entry (its name and the
error) instead of failing the whole timeline. Entries are sorted by time (stable: two entries
at the same instant keep their source order), undated ones last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from segue.timeline.model import Entry, TimedEntry, Timeline, TimelineSource, UnknownSubject

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 300


def missing_entry(name: str, error: BaseException) -> Entry:
    """The entry that stands for source ``name``, which could not be read.

    :param name: the source's name.
    :param error: why it could not be read.
    """
    reason = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
    return Entry(
        at=None,
        source=name,
        kind="missing",
        title=f"{name}: this part of the timeline could not be read",
        error=reason,
        missing=True,
    )


def build_timeline(subject: str, sources: Sequence[TimelineSource]) -> Timeline:
    """Read every source for ``subject`` and merge their entries by time.

    :param subject: the subject (an order id).
    :param sources: the readers; one that raises becomes a missing-part entry.
    """
    entries: list[Entry] = []
    missing: list[str] = []
    for source in sources:
        try:
            entries.extend(source.read(subject))
        except Exception as exc:  # a part that is down must not hide the others
            log.warning("timeline of %s: source %s failed: %s", subject, source.name, exc)
            missing.append(source.name)
            entries.append(missing_entry(source.name, exc))
    return Timeline(subject=subject, entries=timed(entries), missing=tuple(missing))


def require_found(timeline: Timeline) -> Timeline:
    """``timeline`` if some source knows its subject, else :class:`UnknownSubject`.

    :param timeline: a built timeline.
    """
    if not timeline.found:
        parts = f" (could not read: {', '.join(timeline.missing)})" if timeline.missing else ""
        raise UnknownSubject(f"no such order: {timeline.subject!r}{parts}")
    return timeline


def timed(entries: Sequence[Entry]) -> tuple[TimedEntry, ...]:
    """The entries in time order, each with seconds since the previous and the first.

    :param entries: entries from any sources, in any order.
    """
    dated = sorted((e for e in entries if e.at is not None), key=_instant)
    undated = [e for e in entries if e.at is None]
    result: list[TimedEntry] = []
    first: datetime | None = dated[0].at if dated else None
    previous: datetime | None = None
    for entry in dated:
        assert entry.at is not None and first is not None
        result.append(
            TimedEntry(
                entry=entry,
                since_previous_seconds=(entry.at - previous).total_seconds() if previous else None,
                since_first_seconds=(entry.at - first).total_seconds(),
            )
        )
        previous = entry.at
    result += [TimedEntry(entry=e, since_previous_seconds=None, since_first_seconds=None)
               for e in undated]  # fmt: skip
    return tuple(result)


def _instant(entry: Entry) -> datetime:
    assert entry.at is not None
    return entry.at

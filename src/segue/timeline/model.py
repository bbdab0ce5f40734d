"""The values of a timeline: an :class:`Entry` a source reports, and the merged
:class:`Timeline` with the time since the previous entry and since the first.

A source that could not be read (Airflow down, a table missing) becomes a *missing* entry that
names the part, so the rest of the timeline still shows and the reader knows what is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Entry(BaseModel):
    """One thing that happened to the subject, as one source saw it.

    :param at: when it happened (timezone-aware); None for a missing part (listed last).
    :param source: the part that reported it (``route``, ``airflow``, ``saga``, ``event``...).
    :param kind: what sort of entry (``decision``, ``task try``, ``transition``, ``event``...).
    :param title: one line saying what happened.
    :param state: a state or status, when the entry has one.
    :param ended_at: when it ended, for entries that last (a task try).
    :param duration_seconds: how long it lasted, for entries that last.
    :param actor: who or what did it (a saga's actor, a service).
    :param error: the error, for a failure.
    :param details: further facts, JSON-serializable.
    :param missing: True for the entry that stands for a source that could not be read.
    """

    model_config = ConfigDict(frozen=True)

    at: datetime | None
    source: str
    kind: str
    title: str
    state: str | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    actor: str | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    missing: bool = False

    @field_validator("at", "ended_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """Naive times (SQLite hands them back) are UTC, so every entry compares."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class TimedEntry(BaseModel):
    """An entry in the merged timeline, with its distance to the previous and first entry.

    :param entry: the entry.
    :param since_previous_seconds: seconds since the previous dated entry (None: first, or undated).
    :param since_first_seconds: seconds since the first dated entry (None when undated).
    """

    model_config = ConfigDict(frozen=True)

    entry: Entry
    since_previous_seconds: float | None
    since_first_seconds: float | None


class Timeline(BaseModel):
    """Every entry of one subject, oldest first; missing parts last.

    :param subject: the subject (an order id).
    :param entries: the merged entries.
    :param missing: the names of the sources that could not be read.
    """

    model_config = ConfigDict(frozen=True)

    subject: str
    entries: tuple[TimedEntry, ...]
    missing: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """True when some source knows the subject (an entry that is not a missing part)."""
        return any(not timed.entry.missing for timed in self.entries)


Reader = Callable[[str], Sequence[Entry]]
"""``subject -> entries``: what a source does; it may raise when its part is unreachable."""


@dataclass(frozen=True)
class TimelineSource:
    """A named reader of entries; the name is what a missing-part entry shows.

    :param name: the part this source reads (``airflow``, ``saga``, ``orders``...).
    :param read: returns the subject's entries; raises when the part cannot be read.
    """

    name: str
    read: Reader


class UnknownSubject(LookupError):
    """No source knows the subject (and none was unreachable)."""

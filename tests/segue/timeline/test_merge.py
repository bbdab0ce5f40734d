"""The timeline's core: sources merged by time, offsets, a failing source shown as missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segue.timeline.merge import build_timeline, require_found
from segue.timeline.model import Entry, TimelineSource, UnknownSubject
from segue.timeline.render import render_text, timeline_json

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def entry(source: str, seconds: float, title: str) -> Entry:
    return Entry(at=T0 + timedelta(seconds=seconds), source=source, kind="k", title=title)


def fixed(name: str, *entries: Entry) -> TimelineSource:
    return TimelineSource(name, lambda subject: list(entries))


def down(subject: str) -> list[Entry]:
    raise ConnectionError("connection refused: 127.0.0.1:8080")


def test_entries_of_every_source_are_merged_by_time_with_offsets() -> None:
    timeline = build_timeline(
        "o-1",
        [
            fixed("a", entry("a", 0.0, "first"), entry("a", 2.5, "third")),
            fixed("b", entry("b", 1.0, "second"), entry("b", 4.0, "fourth")),
        ],
    )
    assert [t.entry.title for t in timeline.entries] == ["first", "second", "third", "fourth"]
    assert [t.since_first_seconds for t in timeline.entries] == [0.0, 1.0, 2.5, 4.0]
    assert [t.since_previous_seconds for t in timeline.entries] == [None, 1.0, 1.5, 1.5]
    assert timeline.missing == () and timeline.found


def test_a_source_that_raises_becomes_a_missing_entry_and_the_rest_still_shows() -> None:
    timeline = build_timeline(
        "o-1",
        [fixed("orders", entry("orders", 0.0, "order recorded")), TimelineSource("airflow", down)],
    )
    assert timeline.missing == ("airflow",)
    [shown, missing] = timeline.entries
    assert shown.entry.title == "order recorded"
    assert missing.entry.missing and missing.entry.source == "airflow"
    assert "ConnectionError: connection refused" in (missing.entry.error or "")
    assert missing.since_first_seconds is None  # undated, listed last
    text = render_text(timeline)
    assert "(missing: airflow)" in text.splitlines()[0]
    assert "MISSING" in text.splitlines()[-1] and "could not be read" in text
    assert timeline_json(timeline)["missing"] == ["airflow"]


def test_naive_times_are_taken_as_utc_so_sources_compare() -> None:
    naive = Entry(at=datetime(2026, 12, 6, 12, 0, 1), source="s", kind="k", title="naive")
    timeline = build_timeline("o", [fixed("s", naive, entry("t", 0.0, "aware"))])
    assert [t.entry.title for t in timeline.entries] == ["aware", "naive"]
    assert timeline.entries[1].since_first_seconds == 1.0


def test_an_order_no_source_knows_is_unknown_even_when_a_part_is_down() -> None:
    with pytest.raises(UnknownSubject, match="no such order: 'nobody'"):
        require_found(build_timeline("nobody", [fixed("orders")]))
    with pytest.raises(UnknownSubject, match=r"could not read: airflow"):
        require_found(build_timeline("nobody", [fixed("x"), TimelineSource("airflow", down)]))

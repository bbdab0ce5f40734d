"""The path's steps and the current one, from a timeline of each kind of path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from segue.airflow.timeline import RunFacts, TaskTry, run_entries
from segue.timeline.merge import build_timeline
from segue.timeline.model import Entry, TimelineSource
from segue.timeline.render import render_text
from segue.timeline.steps import Step, path_steps

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def timeline_of(*entries: Entry):
    return build_timeline("o-1", [TimelineSource("test", lambda subject: list(entries))])


def run(*tries: TaskTry) -> RunFacts:
    return RunFacts(dag_id="d", run_id="order__o-1", state="failed", start_date=T0, tries=tries)


def test_a_dag_runs_tasks_in_the_order_they_ran_the_first_not_done_is_current() -> None:
    facts = run(
        TaskTry(task_id="notify", try_number=0),  # listed first, never ran
        TaskTry(task_id="charge", try_number=2, state="failed", start_date=at(3), end_date=at(4)),
        TaskTry(
            task_id="charge", try_number=1, state="up_for_retry", start_date=at(1), end_date=at(2)
        ),
        TaskTry(
            task_id="validate", try_number=1, state="success", start_date=at(0), end_date=at(1)
        ),
    )
    entries = run_entries(facts)
    assert [e.title for e in entries if e.kind == "task try"] == [
        "task charge try 2",
        "task charge try 1",
        "task validate try 1",
    ]  # fmt: skip  (the try never run has no entry)
    assert path_steps(timeline_of(*entries)) == (
        Step(name="validate", state="success"),
        Step(name="charge", state="failed", current=True),
        Step(name="notify", state=None),
    )
    assert "path: validate > [charge] > notify" in render_text(timeline_of(*entries))


def test_a_dag_run_that_succeeded_is_at_its_last_task() -> None:
    facts = run(
        TaskTry(task_id="a", try_number=1, state="success", start_date=at(0), end_date=at(1)),
        TaskTry(task_id="b", try_number=1, state="success", start_date=at(1), end_date=at(2)),
    )
    steps = path_steps(timeline_of(*run_entries(facts)))
    assert [(s.name, s.current) for s in steps] == [("a", False), ("b", True)]


def test_a_saga_is_at_its_last_state_and_events_at_the_last_event() -> None:
    saga = [
        Entry(at=at(i), source="saga", kind="transition", title="t", state=state)
        for i, state in enumerate(["RECEIVED", "CHARGING", "FAILED", "UNDO", "COMPENSATED"])
    ]
    steps = path_steps(timeline_of(*saga))
    assert [s.name for s in steps][-1] == "COMPENSATED" and steps[-1].current
    assert sum(s.current for s in steps) == 1
    events = [
        Entry(at=at(i), source="event", kind="event", title="e", details={"type": f"p.{name}"})
        for i, name in enumerate(["OrderPlaced", "OrderValidated"])
    ]
    assert [(s.name, s.current) for s in path_steps(timeline_of(*events))] == [
        ("OrderPlaced", False),
        ("OrderValidated", True),
    ]
    assert path_steps(timeline_of()) == ()

"""The Airflow part of a timeline: a DAG run and every try of its tasks.

``airflow_source`` turns the runs a workflow names for a subject (``DagRunRef``: by run id, or
by what their conf holds) into entries, through a *run reader*
(``segue.airflow.timeline_readers``: Airflow's REST API v2 for the CLI, Airflow's metadata
database for the plugin). When Airflow cannot be reached the reader raises and the timeline
shows the part as missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from segue.timeline.model import Entry, TimelineSource
from segue.timeline.workflow import DagRunRef


class TaskTry(BaseModel):
    """One try of one task of a DAG run.

    :param task_id: the task.
    :param try_number: the try (1 for the first).
    :param state: its state (``success``, ``failed``, ``up_for_retry``...; None if not started).
    :param start_date: when the try started.
    :param end_date: when it ended.
    :param map_index: the mapped index (-1 when not mapped).
    """

    model_config = ConfigDict(frozen=True)

    task_id: str
    try_number: int
    state: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    map_index: int = -1


class RunFacts(BaseModel):
    """A DAG run and the tries of its tasks.

    :param dag_id: the DAG.
    :param run_id: the run.
    :param state: the run's state.
    :param queued_at: when it was queued.
    :param start_date: when it started.
    :param end_date: when it ended.
    :param tries: every task try known, in any order.
    """

    model_config = ConfigDict(frozen=True)

    dag_id: str
    run_id: str
    state: str | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    tries: tuple[TaskTry, ...] = ()


RunReader = Callable[[DagRunRef], Sequence[RunFacts]]
"""``run -> the facts of the runs it names`` (none when Airflow has no such run); raises when
Airflow cannot be reached."""


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def run_entries(facts: RunFacts) -> list[Entry]:
    """The run's entry (with every task's latest state, in the order they ran), then one entry
    per task try that started or ended (tries not run yet are left out).

    :param facts: the run as read.
    """
    where = f"{facts.dag_id}/{facts.run_id}"
    entries = [
        Entry(
            at=facts.start_date or facts.queued_at,
            source="airflow",
            kind="dag run",
            title=f"DAG run {where}",
            state=facts.state,
            ended_at=facts.end_date,
            duration_seconds=_seconds(facts.start_date, facts.end_date),
            details={
                "dag_id": facts.dag_id,
                "run_id": facts.run_id,
                "tasks": [[task_id, state] for task_id, state in task_states(facts.tries)],
            },
        )
    ]
    for attempt in facts.tries:
        if attempt.start_date is None and attempt.end_date is None:
            continue
        mapped = f"[{attempt.map_index}]" if attempt.map_index >= 0 else ""
        entries.append(
            Entry(
                at=attempt.start_date or attempt.end_date,
                source="airflow",
                kind="task try",
                title=f"task {attempt.task_id}{mapped} try {attempt.try_number}",
                state=attempt.state,
                ended_at=attempt.end_date,
                duration_seconds=_seconds(attempt.start_date, attempt.end_date),
                details={
                    "dag_id": facts.dag_id,
                    "run_id": facts.run_id,
                    "task_id": attempt.task_id,
                    "try_number": attempt.try_number,
                    "map_index": attempt.map_index,
                },
            )
        )
    return entries


def task_states(tries: Sequence[TaskTry]) -> list[tuple[str, str | None]]:
    """Each task's latest state, tasks in the order they first ran (those not run yet last).

    :param tries: every try of the run's tasks.
    """
    latest: dict[str, TaskTry] = {}
    first_start: dict[str, datetime] = {}
    for attempt in tries:
        known = latest.get(attempt.task_id)
        if known is None or attempt.try_number >= known.try_number:
            latest[attempt.task_id] = attempt
        began = attempt.start_date or attempt.end_date
        if began is not None and (
            attempt.task_id not in first_start or began < first_start[attempt.task_id]
        ):
            first_start[attempt.task_id] = began
    never = datetime.max.replace(tzinfo=UTC)
    order = sorted(latest, key=lambda task: first_start.get(task, never))
    return [(task, latest[task].state) for task in order]


def airflow_source(
    dag_runs: Callable[[str], Sequence[DagRunRef]], read_run: RunReader, name: str = "airflow"
) -> TimelineSource:
    """The source of the subject's DAG runs and task tries.

    :param dag_runs: ``subject -> runs`` (the workflow's ``WorkflowTimeline.dag_runs``).
    :param read_run: reads one run from Airflow (REST or metadata).
    :param name: the part's name in the timeline.
    """

    def read(subject: str) -> Sequence[Entry]:
        entries: list[Entry] = []
        seen: set[tuple[str, str]] = set()
        for ref in dag_runs(subject):
            found = [f for f in read_run(ref) if (f.dag_id, f.run_id) not in seen]
            for facts in found:
                seen.add((facts.dag_id, facts.run_id))
                entries += run_entries(facts)
            if not found and ref.expected and (ref.dag_id, ref.run_id) not in seen:
                entries.append(
                    Entry(
                        at=None,
                        source=name,
                        kind="dag run",
                        title=f"DAG run {ref.dag_id}/{ref.run_id or ref.conf} not found in Airflow",
                        state="not found",
                        details={"dag_id": ref.dag_id, "run_id": ref.run_id},
                    )
                )
        return entries

    return TimelineSource(name, read)


def add_try(tries: dict[tuple[str, int, int], TaskTry], ti: dict[str, Any]) -> None:
    """Keep one try per (task, map index, try number); a later listing wins.

    :param tries: the tries kept so far, by (task, map index, try number).
    :param ti: a task instance's columns (REST JSON or metadata row) as a dict.
    """
    attempt = TaskTry(
        task_id=ti["task_id"],
        try_number=max(int(ti.get("try_number") or 0), 1),
        state=ti.get("state"),
        start_date=ti.get("start_date"),
        end_date=ti.get("end_date"),
        map_index=ti.get("map_index", -1) if ti.get("map_index") is not None else -1,
    )
    tries[attempt.task_id, attempt.map_index, attempt.try_number] = attempt

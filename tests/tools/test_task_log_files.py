"""``AirflowStack.task_log_files`` reads every try's log file of a task, the triggerer's files
(``attempt=1.log.trigger.2.log``) after their try's own, tries in numeric order."""

from __future__ import annotations

from pathlib import Path

from tools.airflow_stack import AirflowStack


def test_every_try_and_its_trigger_log_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "logs" / "dag_id=d" / "run_id=manual__2026-12-06T13:45:27+00:00"
    folder = folder / "task_id=t"
    folder.mkdir(parents=True)
    for name in ("attempt=10.log", "attempt=2.log", "attempt=1.log.trigger.2.log", "attempt=1.log"):
        (folder / name).write_text(name)
    stack = AirflowStack(home=tmp_path, metadata_url="postgresql://unused")
    text = stack.task_log_files("d", "manual__2026-12-06T13:45:27+00:00", "t")
    assert text.splitlines() == [
        "attempt=1.log",
        "attempt=1.log.trigger.2.log",
        "attempt=2.log",
        "attempt=10.log",
    ]


def test_a_task_that_never_ran_has_no_log(tmp_path: Path) -> None:
    stack = AirflowStack(home=tmp_path, metadata_url="postgresql://unused")
    assert stack.task_log_files("d", "r", "t") == ""

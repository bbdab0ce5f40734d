"""tools.airflow_celery and AirflowStack(executor="celery"), without starting Airflow: the
settings a Celery stack gets, the supervisor's behaviour with real child processes, and the
worker-readiness check on the supervisor's log. The real stack: tests/e2e/test_celery_executor.py.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from tools.airflow_celery import (
    WORKER,
    CeleryOptions,
    Supervisor,
    celery_env,
    supervisor_command,
    worker_ready,
)
from tools.airflow_stack import AirflowStack

METADATA = "postgresql+psycopg://postgres@127.0.0.1:5432/celery_unit"
OPTIONS = CeleryOptions(
    broker_url="amqp://guest:guest@127.0.0.1:5672/celery-unit",
    queue="celery-unit",
    worker_name="celery-unit@%h",
    concurrency=3,
    log_server_port=18793,
)


def test_celery_env_names_broker_backend_queue_and_worker() -> None:
    assert celery_env(OPTIONS, METADATA) == {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": OPTIONS.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{METADATA}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "3",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "celery-unit",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "18793",
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "30.0",
    }


def test_a_celery_stack_runs_the_supervisor_with_celery_settings(tmp_path: Path) -> None:
    stack = AirflowStack(tmp_path, METADATA, executor="celery", celery=OPTIONS)
    env = stack.env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "celery-unit"
    assert stack.airflow_command() == supervisor_command(OPTIONS)
    assert supervisor_command(OPTIONS)[-2:] == ["--worker-name", "celery-unit@%h"]


def test_the_default_stack_is_unchanged(tmp_path: Path) -> None:
    stack = AirflowStack(tmp_path, METADATA)
    assert stack.env()["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW__CELERY__BROKER_URL" not in stack.env()
    assert stack.airflow_command()[-1] == "standalone"


@pytest.mark.parametrize(
    ("executor", "options"), [("celery", None), ("kubernetes", OPTIONS)], ids=["no-options", "bad"]
)
def test_a_stack_refuses_an_incomplete_executor(
    tmp_path: Path, executor: str, options: CeleryOptions | None
) -> None:
    with pytest.raises(ValueError):
        AirflowStack(tmp_path, METADATA, executor=executor, celery=options)


def test_worker_ready_reads_only_the_workers_ready_line() -> None:
    ready = f"{WORKER:14} | 2026-12-06T16:25:05Z [info ] celery-x@vm ready. [celery.apps.worker]"
    assert worker_ready(f"scheduler      | starting\n{ready}\n")
    assert not worker_ready("scheduler      | celery-x@vm ready.\n")  # another component's line
    assert not worker_ready(f"{WORKER:14} | mingle: searching for neighbors\n")


def test_the_supervisor_stops_the_rest_when_one_component_exits() -> None:
    out = io.StringIO()
    commands = {
        "sleeper": [sys.executable, "-c", "import time; time.sleep(60)"],
        "crasher": [sys.executable, "-c", "print('bye'); raise SystemExit(7)"],
    }
    supervisor = Supervisor(commands, out)
    supervisor.start(list(commands))
    assert supervisor.watch() == 7
    assert supervisor.children["sleeper"].poll() is not None  # stopped, not left behind
    assert "crasher        | bye" in out.getvalue()
    assert "crasher exited with code 7; stopping the rest" in out.getvalue()

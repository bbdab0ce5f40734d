"""``segue up`` for the event path: the services, event log and intake in the background, and
the hand-over of DAG-bound orders to Airflow once Airflow is up.

Started only when RabbitMQ answers; each process gets a fixed health port (listed by
``segue up``) and a log under ``.airflow/logs/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from include.services import AIRFLOW_PROCESSES, EVENT_PATH_PROCESSES
from segue.bus.connection import connect
from tools.processes import (
    answers_as,
    python_module,
    spawn_detached,
    stop_detached,
    wait_detached,
)
from tools.services import service_env

INTAKE_PORT = 8097
FIRST_HEALTH_PORT = 8110
READY_TIMEOUT_SECONDS = 60.0
ALL_PROCESSES = {**EVENT_PATH_PROCESSES, **AIRFLOW_PROCESSES}


def broker_reachable(amqp_url: str) -> bool:
    """True when RabbitMQ at ``amqp_url`` accepts a connection within about two seconds."""
    try:
        with connect(amqp_url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def health_ports() -> dict[str, int]:
    """The fixed health port of every process ``segue up`` starts."""
    return {name: FIRST_HEALTH_PORT + index for index, name in enumerate(ALL_PROCESSES)}


def start_event_path(home: Path, *, database_url: str, amqp_url: str, gateway_url: str) -> str:
    """(Re)start every event-path process detached, wait until ready; the intake's URL."""
    stop_event_path(home)
    env = service_env(database_url=database_url, amqp_url=amqp_url, gateway_url=gateway_url)
    env["SEGUE_INTAKE_PORT"] = str(INTAKE_PORT)
    _spawn_ready(home, EVENT_PATH_PROCESSES, env)
    return f"http://127.0.0.1:{INTAKE_PORT}"


def start_airflow_handover(
    home: Path,
    *,
    database_url: str,
    amqp_url: str,
    gateway_url: str,
    airflow_url: str,
    username: str,
    password: str,
) -> None:
    """(Re)start the hand-over to the Airflow at ``airflow_url`` (logging in as ``username``)."""
    for name in AIRFLOW_PROCESSES:
        stop_detached(_pid_path(home, name))
    env = service_env(database_url=database_url, amqp_url=amqp_url, gateway_url=gateway_url)
    env.update(
        SEGUE_AIRFLOW_API_URL=airflow_url,
        SEGUE_AIRFLOW_USERNAME=username,
        SEGUE_AIRFLOW_PASSWORD=password,
    )
    _spawn_ready(home, AIRFLOW_PROCESSES, env)


def stop_event_path(home: Path) -> list[str]:
    """Stop every process started by ``start_event_path`` and ``start_airflow_handover``; the
    names stopped."""
    return [name for name in ALL_PROCESSES if stop_detached(_pid_path(home, name))]


def _spawn_ready(home: Path, processes: Mapping[str, str], env: dict[str, str]) -> None:
    """Start ``name -> module`` detached with their fixed health ports; wait until each one
    answers ``/readyz`` as itself (its own pid)."""
    ports = {name: port for name, port in health_ports().items() if name in processes}
    for name, module in processes.items():
        spawn_detached(
            python_module(module),
            env={**env, "SEGUE_SERVICE_HEALTH_PORT": str(ports[name])},
            log_path=_log_path(home, name),
            pid_path=_pid_path(home, name),
        )
    for name, port in ports.items():  # all start at once; each must answer as itself
        wait_detached(
            _pid_path(home, name),
            lambda pid, port=port: answers_as(f"http://127.0.0.1:{port}/readyz", pid),
            timeout=READY_TIMEOUT_SECONDS,
            name=name,
            log_path=_log_path(home, name),
        )


def _pid_path(home: Path, name: str) -> Path:
    return home / "pids" / f"{name}.pid"


def _log_path(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"

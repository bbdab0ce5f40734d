"""``segue up`` for the event path: the services, event log and intake in the background.

Started only when RabbitMQ answers; each process gets a fixed health port (listed by
``segue up``) and a log under ``.airflow/logs/``.
"""

from __future__ import annotations

from pathlib import Path

from include.services import EVENT_PATH_PROCESSES
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


def broker_reachable(amqp_url: str) -> bool:
    try:
        with connect(amqp_url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def health_ports() -> dict[str, int]:
    return {name: FIRST_HEALTH_PORT + index for index, name in enumerate(EVENT_PATH_PROCESSES)}


def start_event_path(home: Path, *, database_url: str, amqp_url: str, gateway_url: str) -> str:
    """(Re)start every event-path process detached, wait until ready; the intake's URL."""
    stop_event_path(home)
    env = service_env(database_url=database_url, amqp_url=amqp_url, gateway_url=gateway_url)
    env["SEGUE_INTAKE_PORT"] = str(INTAKE_PORT)
    ports = health_ports()
    for name, module in EVENT_PATH_PROCESSES.items():
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
    return f"http://127.0.0.1:{INTAKE_PORT}"


def stop_event_path(home: Path) -> list[str]:
    """Stop every event-path process started by ``start_event_path``; the names stopped."""
    return [name for name in EVENT_PATH_PROCESSES if stop_detached(_pid_path(home, name))]


def _pid_path(home: Path, name: str) -> Path:
    return home / "pids" / f"{name}.pid"


def _log_path(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"

"""``segue up`` for the event path: the services, event log and intake in the background.

Started only when RabbitMQ answers; each process gets a fixed health port (listed by
``segue up``) and a log under ``.airflow/logs/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from include.services import EVENT_PATH_PROCESSES
from segue.bus.connection import connect
from tools import background
from tools.airflow_stack import PROJECT_ROOT
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
        background.spawn(
            [sys.executable, "-m", module],
            env={**env, "SEGUE_SERVICE_HEALTH_PORT": str(ports[name])},
            log_path=home / "logs" / f"{name}.log",
            pid_path=_pid_path(home, name),
            cwd=PROJECT_ROOT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            if background.read_pid(_pid_path(home, name)) is None:
                raise RuntimeError(f"{name} exited; see {home / 'logs' / f'{name}.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    del waiting[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if waiting:
        raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS}s: {sorted(waiting)}")
    return f"http://127.0.0.1:{INTAKE_PORT}"


def stop_event_path(home: Path) -> list[str]:
    """Stop every event-path process started by ``start_event_path``; the names stopped."""
    return [name for name in EVENT_PATH_PROCESSES if background.stop(_pid_path(home, name))]


def _pid_path(home: Path, name: str) -> Path:
    return home / "pids" / f"{name}.pid"

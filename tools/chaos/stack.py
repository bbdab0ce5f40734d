"""A running Segue stack as the fault and comparison tools see it: where each part answers.

:func:`local_stack` describes the one ``make run`` / ``segue up`` started (URLs, the demo
intake key, the gateway's admin token and the Airflow login from ``.airflow/``); a deployment
elsewhere is described by its URLs and DSNs (``segue chaos --intake-url ...``). Faults that
kill processes need the stack's processes on this host (:class:`ServiceHandle`); without them
those faults are reported as not applicable, never faked.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import psutil

from include.gateway.admin import GatewayAdmin
from segue.store.postgres import postgres_reachable
from tools.processes import answers_as, read_pid, spawn_detached

RESTART_TIMEOUT_SECONDS = 60.0
HEALTH_TIMEOUT_SECONDS = 20.0  # a loaded api-server answers slowly


class StackError(RuntimeError):
    """A part of the stack does not answer, or a setting needed to reach it is missing."""


class ServiceHandle(Protocol):
    """A service process on this host that a fault may kill and bring back."""

    name: str

    @property
    def pid(self) -> int:
        """Its process id now."""
        ...

    def kill(self) -> None:
        """SIGKILL it (a crash)."""
        ...

    def restart(self) -> None:
        """Start it again and wait until it is ready."""
        ...


@dataclass
class DetachedService:
    """A service ``segue up`` started detached (pid file ``home/pids/<name>.pid``).

    A restart runs the killed process's own command line, environment and directory again (read
    from ``/proc`` before the kill), so it comes back as it was.

    :param name: the process's name in ``segue up``.
    :param home: the launcher's home (``.airflow``).
    """

    name: str
    home: Path
    _saved: tuple[list[str], dict[str, str], str] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """Its pid; StackError when it is not running."""
        pid = read_pid(self.home / "pids" / f"{self.name}.pid")
        if pid is None:
            raise StackError(f"{self.name} is not running (no live pid in {self.home}/pids)")
        return pid

    def kill(self) -> None:
        """Remember how it was started, then SIGKILL it."""
        process = psutil.Process(self.pid)
        self._saved = (process.cmdline(), process.environ(), process.cwd())
        os.kill(process.pid, signal.SIGKILL)
        psutil.wait_procs([process], timeout=10)

    def restart(self) -> None:
        """Run the saved command again and wait for its ``/readyz``."""
        if self._saved is None:
            raise StackError(f"{self.name} was not killed by this tool; nothing to restart")
        command, env, cwd = self._saved
        pid = spawn_detached(
            command,
            env=env,
            log_path=self.home / "logs" / f"{self.name}.log",
            pid_path=self.home / "pids" / f"{self.name}.pid",
            cwd=Path(cwd),
        )
        url = f"http://127.0.0.1:{env['SEGUE_SERVICE_HEALTH_PORT']}/readyz"
        deadline = time.monotonic() + RESTART_TIMEOUT_SECONDS
        while not answers_as(url, pid):
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} did not come back within 60 s")
            time.sleep(0.25)


@dataclass(frozen=True)
class Stack:
    """Where a running stack answers, and what a tool needs to drive it.

    :param database_url: the business store (SQLAlchemy URL).
    :param intake_url: the front door (``POST /orders``).
    :param api_key: an API key of the intake.
    :param gateway_url: the payment gateway.
    :param gateway_token: the gateway's admin token (to set its faults); None: leave them.
    :param amqp_url: RabbitMQ.
    :param airflow_url: Airflow's api-server (None: no DAG paths).
    :param airflow_user: the Airflow login.
    :param airflow_password: its password.
    :param services: the stack's service processes on this host, by name (empty: remote).
    :param airflow_pid: the ``airflow standalone`` process on this host, if any.
    :param gateway_pid: the gateway's process on this host, if any.
    """

    database_url: str
    intake_url: str
    api_key: str = field(repr=False)
    gateway_url: str
    gateway_token: str | None = field(default=None, repr=False)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    airflow_url: str | None = None
    airflow_user: str = "admin"
    airflow_password: str | None = field(default=None, repr=False)
    services: Mapping[str, ServiceHandle] = field(default_factory=dict)
    airflow_pid: int | None = None
    gateway_pid: int | None = None

    def processes(self) -> dict[str, int]:
        """The stack's processes on this host that run now: name -> pid."""
        found = {"airflow": self.airflow_pid, "gateway": self.gateway_pid}
        for name, service in self.services.items():
            try:
                found[name] = service.pid
            except StackError:
                continue
        return {name: pid for name, pid in found.items() if pid is not None}

    def gateway_admin(self) -> GatewayAdmin | None:
        """The gateway's admin API, when its token is known."""
        return GatewayAdmin(self.gateway_url, self.gateway_token) if self.gateway_token else None

    def check(self, airflow: bool = True) -> None:
        """Raise StackError naming the first part that does not answer.

        :param airflow: check Airflow too (the DAG paths need it; the event path does not).
        """
        if self.database_url.startswith("postgresql") and not postgres_reachable(self.database_url):
            raise StackError(f"the business store does not answer at {self.database_url}")
        parts = [
            ("the intake (front door)", f"{self.intake_url}/healthz"),
            ("the gateway", f"{self.gateway_url}/healthz"),
        ]
        if airflow:
            if not self.airflow_url or not self.airflow_password:
                raise StackError("the DAG paths need Airflow: --airflow-url, --airflow-password")
            parts.append(("Airflow", f"{self.airflow_url}/api/v2/monitor/health"))
        for what, url in parts:
            try:
                httpx.get(url, timeout=HEALTH_TIMEOUT_SECONDS).raise_for_status()
            except httpx.HTTPError as exc:
                raise StackError(
                    f"{what} does not answer at {url} ({type(exc).__name__}); is the stack up? "
                    "(`make run`, or --start-stack)"
                ) from None


def local_stack(home: Path, **given: str) -> Stack:
    """The stack ``segue up`` runs from ``home`` (``.airflow``), with its files read.

    :param home: the launcher's home (its pid files name the processes on this host).
    :param given: :class:`Stack` fields given explicitly (they win over the files).
    :raises StackError: when the intake key's file is missing and no key was given.
    """
    from include.services import AIRFLOW_PROCESSES, EVENT_PATH_PROCESSES
    from segue.settings import get_settings
    from tools.airflow_stack import AirflowStack
    from tools.event_path import INTAKE_PORT
    from tools.up import (
        AIRFLOW_PORT,
        DEMO_KEY_FILE,
        GATEWAY_PORT,
        GATEWAY_TOKEN_FILE,
        local_business_url,
    )

    if "api_key" not in given:
        if not (home / DEMO_KEY_FILE).exists():
            raise StackError(f"no {home / DEMO_KEY_FILE}: start the stack with `make run` first")
        given["api_key"] = (home / DEMO_KEY_FILE).read_text().strip()
    if "gateway_token" not in given and (home / GATEWAY_TOKEN_FILE).exists():
        given["gateway_token"] = (home / GATEWAY_TOKEN_FILE).read_text().strip()
    airflow = AirflowStack(home=home, metadata_url="", port=AIRFLOW_PORT)
    if "airflow_password" not in given and airflow.password_file.exists():
        given["airflow_password"] = airflow.admin_password()
    defaults = {
        "database_url": local_business_url(home),
        "intake_url": f"http://127.0.0.1:{INTAKE_PORT}",
        "gateway_url": f"http://127.0.0.1:{GATEWAY_PORT}",
        "amqp_url": get_settings().amqp_url,
        "airflow_url": airflow.url,
    }
    processes = {**EVENT_PATH_PROCESSES, **AIRFLOW_PROCESSES}
    return Stack(
        **{**defaults, **given},  # type: ignore[arg-type]
        services={name: DetachedService(name, home) for name in processes},
        airflow_pid=read_pid(airflow.pid_path),
        gateway_pid=read_pid(home / "gateway.pid"),
    )

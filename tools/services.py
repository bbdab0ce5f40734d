"""Run choreographed services as real processes (tests, benchmarks, ``segue up``).

Each service is ``python -m <module>`` in its own process group (a :class:`ChildProcess`),
with a health port chosen here and its log in a file. ``start_services`` waits until every one
answers ``/readyz`` itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.workflow import workflow_env
from tools.ports import unused_port
from tools.processes import (
    ChildProcess,
    ProcessStartError,
    answers_as,
    local_http,
    python_env,
    python_module,
)

READY_TIMEOUT_SECONDS = 60.0

ServiceStartError = ProcessStartError  # the name the tests and benchmarks know


@dataclass
class ServiceProcess(ChildProcess):
    """One service process; each ``start()`` gives it a fresh health port
    (``SEGUE_SERVICE_HEALTH_PORT``)."""

    health_port: int = 0

    @classmethod
    def of_module(
        cls, name: str, module: str, env: Mapping[str, str], log_path: Path
    ) -> ServiceProcess:
        """The service ``python -m module`` with environment ``env``, logging to ``log_path``."""
        return cls(name=name, command=python_module(module), env=dict(env), log_path=log_path)

    @property
    def health_url(self) -> str:
        """Base URL of its ``/healthz``, ``/readyz`` and ``/metrics``."""
        return f"http://127.0.0.1:{self.health_port}"

    def start(self) -> None:
        """Start the service on an unused health port."""
        self.health_port = unused_port()
        self.env = {**self.env, "SEGUE_SERVICE_HEALTH_PORT": str(self.health_port)}
        super().start()

    def ready(self) -> bool:
        """This process answers ``/readyz`` with 200 (not some other process on its port)."""
        return answers_as(f"{self.health_url}/readyz", self.pid)

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS, port_retries: int = 3) -> None:
        """Wait for readiness; start again on another port if its health port was taken."""
        while True:
            try:
                self.wait_until(self.ready, timeout)
                return
            except ProcessStartError:
                if port_retries <= 0 or not self.port_was_taken():
                    raise
                port_retries -= 1
                self.start()

    def metrics(self) -> dict[str, Any]:
        """The counters the service's ``/metrics`` reports."""
        return dict(local_http().get(f"{self.health_url}/metrics", timeout=2.0).json())

    def peak_rss_kib(self) -> int:
        """The process's peak resident memory (VmHWM) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def restart(self) -> None:
        """Start it again (after a ``kill()`` or ``stop()``) and wait until it is ready."""
        self.start()
        self.wait_ready()


def service_env(
    *, database_url: str, amqp_url: str, gateway_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a service process: this one's plus the Segue settings."""
    return python_env(
        {
            **workflow_env(),
            "SEGUE_DATABASE_URL": database_url,
            "SEGUE_AMQP_URL": amqp_url,
            "SEGUE_GATEWAY_URL": gateway_url,
            **(extra or {}),
        }
    )


@contextmanager
def start_services(
    modules: Mapping[str, str],
    *,
    database_url: str,
    amqp_url: str,
    gateway_url: str,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    env_of: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[dict[str, ServiceProcess]]:
    """Start ``name -> module`` services, wait until all are ready; SIGTERM them afterwards.

    ``env_of`` adds variables to some processes only (``name -> variables``), e.g. a port each
    for two replicas of one module.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(
        database_url=database_url, amqp_url=amqp_url, gateway_url=gateway_url, extra=extra_env
    )
    services = {
        name: ServiceProcess.of_module(
            name, module, {**env, **(env_of or {}).get(name, {})}, log_dir / f"{name}.log"
        )
        for name, module in modules.items()
    }
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        for service in services.values():
            service.stop()

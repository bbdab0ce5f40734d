"""Run choreographed services as real processes (tests, benchmarks, ``segue up``).

Each service is ``python -m <module>`` in its own process group, with a health port chosen here
and its log in a file. ``start_services`` waits until every one answers ``/readyz``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from include.gateway.process import free_port
from include.workflow import workflow_env

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


class ServiceStartError(RuntimeError):
    """A service exited or did not become ready in time (the message has its log's tail)."""


@dataclass
class ServiceProcess:
    """One running service; ``kill()`` is SIGKILL (a crash), ``stop()`` is SIGTERM (graceful)."""

    name: str
    module: str
    env: dict[str, str] = field(repr=False)
    log_path: Path
    health_port: int = 0
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self) -> None:
        self.health_port = _unused_port()
        env = {**self.env, "SEGUE_SERVICE_HEALTH_PORT": str(self.health_port)}
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def ready(self) -> bool:
        """This process answers ``/readyz`` with 200 (not some other process on its port)."""
        try:
            response = httpx.get(f"{self.health_url}/readyz", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json().get("pid") == self.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS, port_retries: int = 3) -> None:
        """Wait for readiness; start again on another port if its health port was taken."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                if port_retries > 0 and PORT_TAKEN in self.log_tail(5):
                    port_retries -= 1
                    self.start()
                    continue
                raise ServiceStartError(f"{self.name} exited:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        raise ServiceStartError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def metrics(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.health_url}/metrics", timeout=2.0).json())

    def peak_rss_kib(self) -> int:
        """The process's peak resident memory (VmHWM) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-work, as in a crash."""
        if self.popen is not None and self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            self.popen.wait(STOP_TIMEOUT_SECONDS)

    def restart(self) -> None:
        self.start()
        self.wait_ready()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)  # type: ignore[union-attr]


PORT_TAKEN = "Address already in use"
_ports_handed_out: set[int] = set()


def _unused_port() -> int:
    """A free port not handed to another service of this process already (the kernel may offer
    one again before the service it went to has bound it)."""
    while (port := free_port()) in _ports_handed_out:
        pass
    _ports_handed_out.add(port)
    return port


def service_env(
    *, database_url: str, amqp_url: str, gateway_url: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a service process: this one's plus the Segue settings."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(workflow_env())
    env.update(
        SEGUE_DATABASE_URL=database_url, SEGUE_AMQP_URL=amqp_url, SEGUE_GATEWAY_URL=gateway_url
    )
    env.update(extra or {})
    return env


@contextmanager
def start_services(
    modules: Mapping[str, str],
    *,
    database_url: str,
    amqp_url: str,
    gateway_url: str,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[dict[str, ServiceProcess]]:
    """Start ``name -> module`` services, wait until all are ready; SIGTERM them afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(
        database_url=database_url, amqp_url=amqp_url, gateway_url=gateway_url, extra=extra_env
    )
    services = {
        name: ServiceProcess(name, module, env, log_dir / f"{name}.log")
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

"""Run the gateway as a real subprocess (tests, benchmarks, the local launcher).

``start_gateway()`` picks a free port, starts ``python -m include.gateway`` in its own process
group, waits for ``/healthz`` and returns a ``GatewayProcess`` (a context manager).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
_PORT_ATTEMPTS = 3


class GatewayStartError(RuntimeError):
    """The gateway process exited or did not answer ``/healthz`` in time."""


@dataclass
class GatewayProcess:
    """A running gateway subprocess; ``stop()`` (or leaving the ``with`` block) ends it."""

    url: str
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] = field(repr=False)
    admin_token: str = field(default="", repr=False)

    @property
    def pid(self) -> int:
        """The gateway's pid, which is also its process group id."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; the exit code."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        return self.popen.wait(timeout)

    def _signal(self, signum: int) -> None:
        # The child leads its own session, so its process group id is its pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the gateway's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may still take it: we retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_gateway(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    failure_rate: Decimal | float | str | None = None,
    log_path: Path | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    admin_token: str | None = None,
) -> GatewayProcess:
    """Start a gateway and wait until it is healthy.

    ``failure_rate=None`` keeps the gateway's own default (``SEGUE_GATEWAY_FAILURE_RATE`` or
    0.02). ``extra_args`` are more CLI flags, e.g. ``("--seed", "7")``. The gateway gets
    ``admin_token`` (default: a new random one) as ``SEGUE_GATEWAY_ADMIN_TOKEN``; it is in the
    returned process's ``admin_token``. Raises ``GatewayStartError`` with the tail of the log
    when it does not come up.
    """
    token = admin_token or secrets.token_urlsafe(32)
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else free_port(host)
        args = ["--host", host, "--port", str(chosen)]
        if failure_rate is not None:
            args += ["--failure-rate", str(failure_rate)]
        process = _spawn([*args, *extra_args], chosen, host, log_path, token)
        try:
            _wait_healthy(process, startup_timeout)
            return process
        except GatewayStartError:
            process.stop()
            address_taken = "address already in use" in process.log_tail().lower()
            if attempt == attempts or not address_taken:
                raise
    raise AssertionError("unreachable")


def _spawn(
    args: list[str], port: int, host: str, log_path: Path | None, admin_token: str
) -> GatewayProcess:
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix=f"segue-gateway-{port}-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["SEGUE_GATEWAY_ADMIN_TOKEN"] = admin_token
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "include.gateway", *args],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return GatewayProcess(
        url=f"http://{host}:{port}",
        port=port,
        log_path=log_path,
        popen=popen,
        admin_token=admin_token,
    )


def _wait_healthy(process: GatewayProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if not process.alive():
                raise GatewayStartError(
                    f"gateway exited with code {process.popen.returncode}; log "
                    f"{process.log_path}:\n{process.log_tail()}"
                )
            try:
                response = client.get(f"{process.url}/healthz")
                # The pid check makes sure we are not talking to another server on that port.
                if response.status_code == 200 and response.json().get("pid") == process.pid:
                    return
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.05)
    raise GatewayStartError(
        f"gateway not healthy after {timeout:.0f}s; log {process.log_path}:\n{process.log_tail()}"
    )

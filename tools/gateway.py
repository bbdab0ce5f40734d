"""Run the gateway simulator (``python -m include.gateway``) as a real process.

``start_gateway()`` picks an unused port, starts the simulator in its own process group, waits
until its own pid answers ``/healthz`` and returns a :class:`GatewayProcess` (a context
manager). ``start_detached_gateway`` is the ``segue up`` variant that outlives the command.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tools.ports import unused_port
from tools.processes import (
    ChildProcess,
    ProcessStartError,
    answers_as,
    python_env,
    python_module,
    spawn_detached,
    stop_detached,
    wait_detached,
)

GATEWAY_MODULE = "include.gateway"
STARTUP_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
_PORT_ATTEMPTS = 3


class GatewayStartError(ProcessStartError):
    """The gateway process exited or did not answer ``/healthz`` in time."""


@dataclass
class GatewayProcess(ChildProcess):
    """A running gateway subprocess; ``stop()`` (or leaving the ``with`` block) ends it."""

    host: str = "127.0.0.1"
    port: int = 0
    admin_token: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
        return super().stop(timeout)


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

    :param port: the port to listen on; None picks an unused one (and another if it was taken).
    :param host: the address to listen on.
    :param failure_rate: None keeps the gateway's own default (``SEGUE_GATEWAY_FAILURE_RATE``
        or 0.02).
    :param log_path: where its output goes (a temporary file when None).
    :param extra_args: more CLI flags, e.g. ``("--seed", "7")``.
    :param startup_timeout: seconds to wait for ``/healthz``.
    :param admin_token: the token of its ``/admin`` routes (``SEGUE_GATEWAY_ADMIN_TOKEN``;
        default: a new random one), kept in the returned process's ``admin_token``.
    :raises GatewayStartError: with the tail of the log when it does not come up.
    """
    token = admin_token or secrets.token_urlsafe(32)
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        chosen = port if port is not None else unused_port(host)
        args = ["--host", host, "--port", str(chosen)]
        if failure_rate is not None:
            args += ["--failure-rate", str(failure_rate)]
        process = GatewayProcess(
            name="gateway",
            command=python_module(GATEWAY_MODULE, *args, *extra_args),
            env={**python_env(), "SEGUE_GATEWAY_ADMIN_TOKEN": token},
            log_path=log_path or _temporary_log(chosen),
            host=host,
            port=chosen,
            admin_token=token,
        )
        process.start()
        try:
            process.wait_until(
                lambda p=process: answers_as(f"{p.url}/healthz", p.pid),
                startup_timeout,
                what="healthy",
            )
            return process
        except ProcessStartError as exc:
            process.stop()
            if attempt == attempts or not process.port_was_taken():
                raise GatewayStartError(str(exc)) from None
    raise AssertionError("unreachable")


def start_detached_gateway(
    home: Path, port: int, *, timeout: float = 20.0, env: dict[str, str] | None = None
) -> str:
    """(Re)start the gateway in the background, pid file under ``home``; its URL once healthy.

    :param home: the launcher's home (``gateway.pid``, ``logs/gateway.log``).
    :param port: the port to listen on.
    :param timeout: seconds to wait for ``/healthz``.
    :param env: variables on top of this process's environment (e.g. where the gateway writes
        the admin token it generates).
    """
    pid_path = home / "gateway.pid"
    log_path = home / "logs" / "gateway.log"
    stop_detached_gateway(home)
    spawn_detached(
        python_module(GATEWAY_MODULE, "--host", "127.0.0.1", "--port", str(port)),
        env=python_env(env),
        log_path=log_path,
        pid_path=pid_path,
    )
    url = f"http://127.0.0.1:{port}"
    wait_detached(
        pid_path,
        lambda pid: answers_as(f"{url}/healthz", pid),
        timeout=timeout,
        name="gateway",
        log_path=log_path,
    )
    return url


def stop_detached_gateway(home: Path) -> bool:
    """Stop the gateway ``start_detached_gateway`` started; True if one was running."""
    return stop_detached(home / "gateway.pid")


def _temporary_log(port: int) -> Path:
    handle, name = tempfile.mkstemp(prefix=f"segue-gateway-{port}-", suffix=".log")
    os.close(handle)
    return Path(name)

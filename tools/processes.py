"""Start, watch and stop the local processes of the launcher, the tests and the benchmarks.

Every process runs in its own session (process group), so stopping it stops what it started,
with its output appended to a log file. Two ways to hold one:

- :class:`ChildProcess`: a child of this process (tests, benchmarks), stopped with it;
- :func:`spawn_detached` / :func:`read_pid` / :func:`stop_detached`: a process that outlives
  the command that started it (``segue up``), found again through its pid file.

Readiness counts only when the process itself answers (:func:`answers_as`): the JSON of its
health endpoint names its pid, so another server on the same port cannot stand in for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 20.0
PORT_TAKEN = "address already in use"


class ProcessStartError(RuntimeError):
    """A process exited or did not become ready in time (the message has its log's tail)."""


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a ``python -m`` child: the project on ``PYTHONPATH``,
    unbuffered output, then ``extra``.

    :param extra: variables set on top.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def python_module(module: str, *args: str) -> list[str]:
    """The command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


@functools.cache
def local_http() -> httpx.Client:
    """The one client for polls of local health endpoints, made on first use.

    ``httpx.get`` builds a client, and with it an SSL context, per call: 60% of the event path
    benchmark's own CPU went there (py-spy). No keep-alive: a polled process may be killed
    between two polls.
    """
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def answers_as(url: str, pid: int, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 200 with JSON naming ``pid`` (that process, not another).

    :param url: a health endpoint, e.g. ``http://127.0.0.1:8110/readyz``.
    :param pid: the pid the answer must name.
    :param timeout: seconds to wait for the answer.
    """
    try:
        response = local_http().get(url, timeout=timeout)
        return response.status_code == 200 and response.json().get("pid") == pid
    except (httpx.HTTPError, ValueError, AttributeError):
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the log at ``path``, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _start(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _signal_group(pgid: int, signum: int) -> None:
    # The child leads its own session, so its process group id is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@dataclass
class ChildProcess:
    """A child process in its own process group; ``stop()`` is SIGTERM (graceful, then SIGKILL
    after a timeout), ``kill()`` is SIGKILL (a crash). Leaving a ``with`` block stops it."""

    name: str
    command: list[str]
    env: dict[str, str] = field(repr=False)
    log_path: Path
    cwd: Path = PROJECT_ROOT
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The process's pid, which is also its process group id."""
        if self.popen is None:
            raise ProcessStartError(f"{self.name} was never started")
        return self.popen.pid

    def start(self) -> None:
        """Start the command (again, after it exited)."""
        self.popen = _start(self.command, self.env, self.log_path, self.cwd)

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Poll ``ready`` until it is true; raise :class:`ProcessStartError` with the log's tail
        when the process exits first or ``timeout`` seconds pass.

        :param ready: the readiness check, e.g. ``lambda: answers_as(url, child.pid)``.
        :param timeout: seconds to wait.
        :param what: the state waited for, in the error message.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen is not None else None
                raise ProcessStartError(
                    f"{self.name} exited with code {code}; log {self.log_path}:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        raise ProcessStartError(
            f"{self.name} not {what} after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def port_was_taken(self) -> bool:
        """The process died because its port was taken (worth starting again on another)."""
        return not self.alive() and PORT_TAKEN in self.log_tail(10).lower()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the process group: the process dies mid-work, as in a crash."""
        if self.popen is not None and self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait(STOP_TIMEOUT_SECONDS)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the process's log."""
        return log_tail(self.log_path, lines)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spawn_detached(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    pid_path: Path,
    cwd: Path = PROJECT_ROOT,
) -> int:
    """Start ``command`` so that it outlives this process; its pid (also written to
    ``pid_path``, where :func:`read_pid` and :func:`stop_detached` find it).

    :param command: the program and its arguments.
    :param env: its whole environment.
    :param log_path: its output is appended there.
    :param pid_path: the pid file.
    :param cwd: its working directory.
    """
    process = _start(command, env, log_path, cwd)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.write_text(str(process.pid))
    return process.pid


def read_pid(pid_path: Path) -> int | None:
    """The pid recorded in ``pid_path`` if that process is still alive."""
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def wait_detached(
    pid_path: Path, ready: Callable[[int], bool], *, timeout: float, name: str, log_path: Path
) -> int:
    """Wait until the detached process of ``pid_path`` is ready; its pid.

    :param ready: called with the pid, e.g. ``lambda pid: answers_as(url, pid)``.
    :param timeout: seconds to wait.
    :param name: the process's name, in the error message.
    :param log_path: its log, whose tail goes into the error message.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(pid_path)
        if pid is None:
            raise ProcessStartError(f"{name} exited; log {log_path}:\n{log_tail(log_path)}")
        if ready(pid):
            return pid
        time.sleep(0.2)
    raise ProcessStartError(f"{name} not ready after {timeout:.0f}s; log {log_path}")


def stop_detached(pid_path: Path, *, grace_seconds: float = 20.0) -> bool:
    """Stop the process group of ``pid_path``: SIGINT, then SIGTERM, then SIGKILL.

    Returns True if something was running. The pid file is removed either way.
    """
    pid = read_pid(pid_path)
    pid_path.unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGINT, grace_seconds), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        if _wait_group_gone(pid, wait):
            return True
    return True


def _wait_group_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        _reap(pgid)
        time.sleep(0.2)
    return False


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)

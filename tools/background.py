"""Start and stop long-running local processes that outlive the command that started them.

Each process runs in its own session (process group) with its output in a log file and its
pid in a pid file, so a later command can find it, stop the whole group, and start it afresh.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    pid_path: Path,
    cwd: Path | None = None,
) -> int:
    """Start ``command`` detached; returns its pid (also written to ``pid_path``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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


def stop(pid_path: Path, *, grace_seconds: float = 20.0) -> bool:
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

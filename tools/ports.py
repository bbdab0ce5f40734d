"""Local TCP ports for the processes the launcher and the tests start.

The kernel may offer the same free port twice before the process it went to has bound it, so
:func:`unused_port` never hands out a port twice in one process.
"""

from __future__ import annotations

import socket
import threading

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (another process may still take it first).

    :param host: the address the port is free on.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def unused_port(host: str = "127.0.0.1") -> int:
    """A free port not handed out by this function before, in this process.

    :param host: the address the port is free on.
    """
    with _lock:
        while (port := free_port(host)) in _handed_out:
            pass
        _handed_out.add(port)
        return port

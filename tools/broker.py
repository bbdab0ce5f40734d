"""Throwaway RabbitMQ virtual hosts, so tests and benchmarks never share queues.

Durable queues outlive the processes that declared them; a vhost per test session (or per test)
keeps one run's messages out of another's. Needs ``rabbitmqctl`` on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

BROKER = os.environ.get("SEGUE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")


class BrokerAdminError(RuntimeError):
    """``rabbitmqctl`` is missing or refused a command."""


def rabbitmqctl(*args: str) -> str:
    if shutil.which("rabbitmqctl") is None:
        raise BrokerAdminError("rabbitmqctl is not installed; cannot create a test vhost")
    result = subprocess.run(
        ["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise BrokerAdminError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def vhost_url(vhost: str) -> str:
    return f"{BROKER}/{quote(vhost, safe='')}"


@contextmanager
def fresh_vhost(vhost: str, user: str = "guest") -> Iterator[str]:
    """A new empty vhost for the block (the AMQP URL), deleted with its queues afterwards."""
    delete_vhost(vhost)
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        yield vhost_url(vhost)
    finally:
        delete_vhost(vhost)


def ensure_vhost(vhost: str, user: str = "guest") -> None:
    """Create ``vhost`` (and give ``user`` every permission on it) unless it exists.

    :param vhost: the virtual host.
    :param user: the user that may use it.
    """
    if vhost not in rabbitmqctl("list_vhosts", "name").split():
        rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    try:
        rabbitmqctl("delete_vhost", vhost)
    except BrokerAdminError as exc:
        if "does not exist" not in str(exc) and "no_such_vhost" not in str(exc):
            raise


def close_all_connections(vhost: str | None = None, reason: str = "fault test") -> None:
    """Drop every client connection of ``vhost`` (all vhosts when None): a broker-side fault."""
    if vhost is None:
        rabbitmqctl("close_all_connections", "--global", reason)
    else:
        rabbitmqctl("close_all_connections", "--vhost", vhost, "--limit", "10000", reason)


def vhost_of(url: str) -> str:
    """The vhost named by an AMQP URL made by ``vhost_url``."""
    from urllib.parse import unquote

    return unquote(url.rsplit("/", 1)[1])

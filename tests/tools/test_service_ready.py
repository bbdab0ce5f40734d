"""A service counts as ready only when its own process answers on its health port: another
process that took the port (the kernel may offer a free port twice) must not stand in for it."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from segue.bus.health import HealthServer
from tools.services import ServiceProcess


@pytest.fixture
def health_server():
    server = HealthServer(0, live=lambda: True, ready=lambda: True, metrics=dict)
    server.start()
    yield server
    server.stop()


def service_on(port: int, pid: int, tmp_path: Path) -> ServiceProcess:
    service = ServiceProcess.of_module("probe", "unused", {}, tmp_path / "probe.log")
    service.health_port = port
    service.popen = SimpleNamespace(pid=pid)  # type: ignore[assignment]
    return service


def test_ready_when_its_own_process_answers(health_server, tmp_path):
    assert service_on(health_server.port, os.getpid(), tmp_path).ready()


def test_not_ready_when_another_process_answers_on_its_port(health_server, tmp_path):
    assert not service_on(health_server.port, os.getpid() + 1, tmp_path).ready()

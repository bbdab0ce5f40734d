"""The gateway's process helper (tools.gateway): startup checks, failure reports and bounded
shutdown."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from tests.include.gateway.helpers import charge_body, new_key
from tools.gateway import GatewayProcess, GatewayStartError, start_gateway


def test_session_gateway_is_the_process_we_started(gateway_process: GatewayProcess) -> None:
    assert gateway_process.alive()
    assert gateway_process.url == f"http://127.0.0.1:{gateway_process.port}"
    assert httpx.get(f"{gateway_process.url}/healthz").json()["pid"] == gateway_process.pid


def test_bad_arguments_raise_with_the_log_tail() -> None:
    with pytest.raises(GatewayStartError, match="unrecognized arguments: --bogus"):
        start_gateway(failure_rate=0, extra_args=["--bogus"])


def test_taken_port_is_not_mistaken_for_our_gateway(gateway_process: GatewayProcess) -> None:
    with pytest.raises(GatewayStartError, match=r"(?i)address already in use"):
        start_gateway(gateway_process.port, failure_rate=0)
    assert gateway_process.alive()


def test_stop_is_bounded_even_with_a_request_stuck_in_a_timeout() -> None:
    process = start_gateway(
        failure_rate=0, extra_args=["--timeout-rate", "1", "--timeout-delay-seconds", "60"]
    )
    with process:
        stuck = threading.Thread(target=lambda: _post_ignoring_errors(process.url), daemon=True)
        stuck.start()
        time.sleep(0.3)
        started = time.monotonic()
        code = process.stop()
        elapsed = time.monotonic() - started
    assert not process.alive()
    assert code != -9  # it shut down on SIGTERM, no SIGKILL needed
    assert elapsed < 4.5
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{process.url}/healthz")


def _post_ignoring_errors(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(
            f"{url}/charges", json=charge_body(), headers={"Idempotency-Key": new_key()}, timeout=10
        )

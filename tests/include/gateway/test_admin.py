"""The admin API: validation of fault changes and reset to the startup state."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from include.gateway import admin

from .helpers import assert_error, create_charge


def test_partial_update_merges(gateway_url: str) -> None:
    admin.set_faults(gateway_url, latency={"distribution": "uniform", "mean_ms": 5})
    faults = admin.set_faults(gateway_url, timeout_rate=0.25, latency={"jitter_ms": 2})
    assert faults["timeout_rate"] == 0.25
    assert faults["latency"]["distribution"] == "uniform"
    assert (faults["latency"]["mean_ms"], faults["latency"]["jitter_ms"]) == (5, 2)
    assert admin.get_faults(gateway_url) == faults


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"timeout_rate": -0.5}, "timeout_rate"),
        ({"fail_next": "many"}, "fail_next"),
        ({"latency": {"distribution": "gaussian"}}, "latency.distribution"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_invalid_updates_are_rejected_and_change_nothing(
    client: httpx.Client, gateway_url: str, patch: dict[str, Any], field: str
) -> None:
    before = admin.get_faults(gateway_url)
    response = client.put("/admin/faults", json=patch)
    assert_error(response, 422, "invalid_request", field=field)
    assert admin.get_faults(gateway_url) == before


def test_non_object_update_is_rejected(client: httpx.Client) -> None:
    assert_error(client.put("/admin/faults", content=b"[1]"), 422, "invalid_request")
    assert_error(client.put("/admin/faults", content=b"{"), 422, "invalid_request")


def test_set_faults_helper_raises_on_invalid(gateway_url: str) -> None:
    with pytest.raises(httpx.HTTPStatusError) as excinfo:
        admin.set_faults(gateway_url, failure_rate=1.5)
    assert excinfo.value.response.status_code == 422


def test_reset_restores_startup_faults_and_clears_everything(
    client: httpx.Client, gateway_url: str
) -> None:
    startup = admin.get_faults(gateway_url)
    assert startup["failure_rate"] == 0  # the session gateway starts with 0, not the 0.02 default
    charge = create_charge(client)
    admin.set_faults(gateway_url, failure_rate=0.9, fail_next=3, seed=5)
    result = admin.reset(gateway_url)
    assert result["faults"] == startup
    assert admin.get_faults(gateway_url) == startup
    assert client.get(f"/charges/{charge['id']}").status_code == 404
    stats = admin.stats(gateway_url)
    assert stats["charges"] == {"succeeded": 0, "declined": 0}
    assert stats["requests"] == stats["injected_failures"] == 0

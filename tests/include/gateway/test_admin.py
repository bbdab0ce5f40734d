"""The admin API: its token, validation of fault changes and reset to the startup state."""

from __future__ import annotations

import stat
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from include.gateway.admin import GatewayAdmin
from include.gateway.admin import stats as gateway_stats
from include.gateway.admin_auth import read_token_file, resolve_admin_token
from include.gateway.app import create_app
from include.gateway.settings import GatewaySettings

from .helpers import assert_error, create_charge


def as_admin(admin: GatewayAdmin) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin.token}"}


def test_partial_update_merges(gateway_url: str, gateway_admin) -> None:
    gateway_admin.set_faults(latency={"distribution": "uniform", "mean_ms": 5})
    faults = gateway_admin.set_faults(timeout_rate=0.25, latency={"jitter_ms": 2})
    assert faults["timeout_rate"] == 0.25
    assert faults["latency"]["distribution"] == "uniform"
    assert (faults["latency"]["mean_ms"], faults["latency"]["jitter_ms"]) == (5, 2)
    assert gateway_admin.get_faults() == faults


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
    client: httpx.Client, gateway_url: str, patch: dict[str, Any], field: str, gateway_admin
) -> None:
    before = gateway_admin.get_faults()
    response = client.put("/admin/faults", json=patch, headers=as_admin(gateway_admin))
    assert_error(response, 422, "invalid_request", field=field)
    assert gateway_admin.get_faults() == before


def test_non_object_update_is_rejected(client: httpx.Client, gateway_admin: GatewayAdmin) -> None:
    for body in (b"[1]", b"{"):
        response = client.put("/admin/faults", content=body, headers=as_admin(gateway_admin))
        assert_error(response, 422, "invalid_request")


def test_set_faults_helper_raises_on_invalid(gateway_url: str, gateway_admin) -> None:
    with pytest.raises(httpx.HTTPStatusError) as excinfo:
        gateway_admin.set_faults(failure_rate=1.5)
    assert excinfo.value.response.status_code == 422


def test_reset_restores_startup_faults_and_clears_everything(
    client: httpx.Client, gateway_url: str, gateway_admin
) -> None:
    startup = gateway_admin.get_faults()
    assert startup["failure_rate"] == 0  # the session gateway starts with 0, not the 0.02 default
    charge = create_charge(client)
    gateway_admin.set_faults(failure_rate=0.9, fail_next=3, seed=5)
    result = gateway_admin.reset()
    assert result["faults"] == startup
    assert gateway_admin.get_faults() == startup
    assert client.get(f"/charges/{charge['id']}").status_code == 404
    stats = gateway_stats(gateway_url)
    assert stats["charges"] == {"succeeded": 0, "declined": 0}
    assert stats["requests"] == stats["injected_failures"] == 0


def admin_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every (method, path) under /admin, read from the app (a new route is covered too)."""
    return sorted(
        (method, route.path)
        for route in app.routes
        if getattr(route, "path", "").startswith("/admin")
        for method in getattr(route, "methods", ())
    )


def test_every_admin_route_of_the_real_process_needs_the_token(gateway_process) -> None:
    routes = admin_routes(create_app(GatewaySettings()))
    assert ("POST", "/admin/reset") in routes and ("PUT", "/admin/faults") in routes
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            response = httpx.request(method, gateway_process.url + path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["error"]["code"] == "admin_unauthorized"
    assert GatewayAdmin.of(gateway_process).get_faults()["failure_rate"] == 0
    assert httpx.get(gateway_process.url + "/stats").status_code == 200  # stats stay open


def test_a_gateway_without_a_token_generates_one_into_its_file(tmp_path) -> None:
    token_file = tmp_path / "secrets" / "admin-token"
    settings = GatewaySettings(admin_token_file=token_file)
    token = resolve_admin_token(settings, write_file=True)
    assert read_token_file(token_file) == token and len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with TestClient(create_app(settings, admin_token=token)) as client:
        assert client.get("/admin/faults").status_code == 401
        ok = client.get("/admin/faults", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    assert resolve_admin_token(settings, write_file=True) != token  # a new start, a new token


def test_a_configured_token_is_used_as_is() -> None:
    settings = GatewaySettings(admin_token="configured-token-0123456789")
    assert resolve_admin_token(settings, write_file=False) == "configured-token-0123456789"
    with pytest.raises(ValueError, match="admin_token"):
        GatewaySettings(admin_token="short")

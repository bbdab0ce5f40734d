"""The fault knobs, switched at run time through the admin API of the real process."""

from __future__ import annotations

import time

import httpx
import pytest

from include.gateway.admin import GatewayAdmin
from include.gateway.admin import stats as gateway_stats

from .helpers import assert_error, charge_body, charge_count, create_charge, new_key, post_charge


def test_fail_next_then_success_with_the_same_key(
    client: httpx.Client, gateway_url: str, gateway_admin
) -> None:
    gateway_admin.set_faults(fail_next=2)
    key, body = new_key(), charge_body()
    for _ in range(2):
        assert_error(post_charge(client, key, body), 503, "gateway_unavailable")
    response = post_charge(client, key, body)
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers  # the failures recorded nothing
    stats = gateway_stats(gateway_url)
    assert stats["charges"]["succeeded"] == 1
    assert stats["injected_failures"] == 2
    assert gateway_admin.get_faults()["fail_next"] == 0


def test_fail_next_applies_to_refunds(
    client: httpx.Client, gateway_url: str, gateway_admin
) -> None:
    charge = create_charge(client)
    gateway_admin.set_faults(fail_next=1)
    key, body = new_key(), {"charge_id": charge["id"], "amount": "1.00"}
    headers = {"Idempotency-Key": key}
    assert_error(client.post("/refunds", json=body, headers=headers), 503, "gateway_unavailable")
    assert client.post("/refunds", json=body, headers=headers).status_code == 201
    assert gateway_stats(gateway_url)["refunds"] == 1


def test_failure_rate_one_records_nothing(
    client: httpx.Client, gateway_url: str, gateway_admin
) -> None:
    gateway_admin.set_faults(failure_rate=1.0)
    key, body = new_key(), charge_body(reference="order-down")
    for _ in range(3):
        assert_error(post_charge(client, key, body), 503, "gateway_unavailable")
    assert charge_count(client) == 0
    assert client.get("/charges", params={"reference": "order-down"}).json() == []
    gateway_admin.set_faults(failure_rate=0)
    assert post_charge(client, key, body).status_code == 201


def _failure_pattern(client: httpx.Client, gateway_admin: GatewayAdmin, seed: int) -> list[bool]:
    gateway_admin.reset()
    gateway_admin.set_faults(failure_rate="0.5", seed=seed)
    statuses = [post_charge(client, new_key(), charge_body()).status_code for _ in range(200)]
    assert set(statuses) <= {201, 503}
    return [status == 503 for status in statuses]


def test_seeded_failure_rate_is_sensible_and_reproducible(
    client: httpx.Client, gateway_url: str, gateway_admin: GatewayAdmin
) -> None:
    pattern = _failure_pattern(client, gateway_admin, seed=1234)
    failures = sum(pattern)
    assert 70 <= failures <= 130
    stats = gateway_stats(gateway_url)
    assert stats["injected_failures"] == failures
    assert stats["charges"]["succeeded"] == 200 - failures
    assert _failure_pattern(client, gateway_admin, seed=1234) == pattern


def test_timeout_charges_then_replays(
    client: httpx.Client, gateway_url: str, gateway_admin
) -> None:
    gateway_admin.set_faults(timeout_rate=1, timeout_delay_seconds=2)
    key, body = new_key(), charge_body(reference="order-slow")
    with pytest.raises(httpx.ReadTimeout):
        client.post("/charges", json=body, headers={"Idempotency-Key": key}, timeout=0.5)
    stats = gateway_stats(gateway_url)
    assert stats["charges"]["succeeded"] == 1  # the charge happened although the client gave up
    assert stats["injected_timeouts"] == 1
    [stored] = client.get("/charges", params={"reference": "order-slow"}).json()
    gateway_admin.set_faults(timeout_rate=0)
    retry = post_charge(client, key, body)
    assert retry.status_code == 201
    assert retry.json()["id"] == stored["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert gateway_stats(gateway_url)["charges"]["succeeded"] == 1


def _timed_charge(client: httpx.Client) -> float:
    started = time.perf_counter()
    assert post_charge(client, new_key(), charge_body()).status_code == 201
    return time.perf_counter() - started


def test_fixed_latency_is_observed_and_none_is_fast(
    client: httpx.Client, gateway_url: str, gateway_admin
) -> None:
    _timed_charge(client)  # warm the connection
    gateway_admin.set_faults(latency={"distribution": "fixed", "mean_ms": 200})
    assert _timed_charge(client) >= 0.19
    gateway_admin.set_faults(latency={"distribution": "none"})
    assert min(_timed_charge(client) for _ in range(3)) < 0.1

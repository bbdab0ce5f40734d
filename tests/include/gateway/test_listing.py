"""``GET /charges`` by creation window, with paging, and its client (reconciliation reads it)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from include.payments import gateway_client
from include.payments.gateway_client import GatewayClient
from tests.include.gateway.helpers import assert_error, create_charge


def test_a_window_lists_only_the_charges_created_in_it_in_order(client: httpx.Client) -> None:
    before = create_charge(client)
    time.sleep(0.01)
    start = datetime.now(UTC)
    inside = [create_charge(client) for _ in range(3)]
    time.sleep(0.01)
    end = datetime.now(UTC)
    time.sleep(0.01)
    after = create_charge(client)

    window = {"created_after": start.isoformat(), "created_before": end.isoformat()}
    response = client.get("/charges", params=window)

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [c["id"] for c in inside]
    assert response.headers["Has-More"] == "false"
    listed = {c["id"] for c in response.json()}
    assert before["id"] not in listed and after["id"] not in listed


def test_pages_follow_the_cursor_until_has_more_is_false(client: httpx.Client) -> None:
    start = datetime.now(UTC)
    made = [create_charge(client)["id"] for _ in range(5)]
    window = {"created_after": start.isoformat(), "limit": "2"}

    first = client.get("/charges", params=window)
    assert [c["id"] for c in first.json()] == made[:2]
    assert first.headers["Has-More"] == "true"
    cursor = first.headers["Next-Starting-After"]
    assert cursor == made[1]
    second = client.get("/charges", params={**window, "starting_after": cursor})
    assert [c["id"] for c in second.json()] == made[2:4]
    third = client.get("/charges", params={**window, "starting_after": made[3]})
    assert [c["id"] for c in third.json()] == made[4:]
    assert third.headers["Has-More"] == "false"


def test_the_client_reads_every_page(
    gateway_url: str, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime.now(UTC)
    made = [create_charge(client)["id"] for _ in range(7)]
    end = datetime.now(UTC) + timedelta(seconds=1)
    monkeypatch.setattr(gateway_client, "PAGE_SIZE", 3)  # seven charges: three pages
    gateway = GatewayClient(gateway_url)
    try:
        listed = gateway.charges_created(start, end)
        assert [charge.id for charge in listed] == made
        assert listed[0].created_at is not None and listed[0].created_at >= start
        assert gateway.get_charge(made[0]) == listed[0]
        assert gateway.get_charge("ch_nobody") is None
    finally:
        gateway.close()


def test_bad_listing_parameters_are_refused_naming_the_field(client: httpx.Client) -> None:
    assert_error(
        client.get("/charges", params={"created_after": "yesterday"}),
        400,
        "invalid_request",
        field="created_after",
    )
    assert_error(
        client.get("/charges", params={"created_before": "2026-12-01T10:00:00"}),
        400,
        "invalid_request",
        field="created_before",
    )
    assert_error(
        client.get("/charges", params={"limit": "0"}), 400, "invalid_request", field="limit"
    )
    assert_error(
        client.get("/charges", params={"starting_after": "ch_nobody"}),
        400,
        "invalid_request",
        field="starting_after",
    )

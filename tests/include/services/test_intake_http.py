"""The intake's front door over real PostgreSQL: API keys, limits, and what gets recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from include.payments.gateway_client import GatewayClient
from include.payments.settings import PaymentSettings
from include.payments.tables import ApiClientRow, OrderPlacementRow, OrderRow
from include.services.api_clients import create_client, hash_key, revoke_client
from include.services.intake_http import create_app
from segue.bus.outbox import OutboxRow
from segue.store.engine import session_scope

LIMITS = PaymentSettings(
    intake_rate_per_second=1000, intake_rate_burst=1000, intake_max_body_bytes=4096
)


def new_client(engine: Engine, name: str = "shop") -> str:
    with session_scope(engine) as session:
        return create_client(session, name)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def http(clean_db: Engine, gateway: GatewayClient) -> Iterator[TestClient]:
    with TestClient(create_app(clean_db, settings=LIMITS, gateway=gateway)) as client:
        yield client


def test_a_client_with_a_key_places_an_order_and_the_client_is_recorded(clean_db, http, order_data):
    key = new_client(clean_db)
    order = order_data()
    response = http.post("/orders", json=order, headers=bearer(key))
    assert response.status_code == 202, response.text
    assert response.json()["client"] == "shop"
    with session_scope(clean_db) as session:
        assert session.get(OrderPlacementRow, order["order_id"]).client == "shop"
    assert count(clean_db, OutboxRow) == 1


def test_the_key_is_stored_only_as_its_hash(clean_db):
    key = new_client(clean_db)
    with session_scope(clean_db) as session:
        row = session.get(ApiClientRow, "shop")
        assert row.key_hash == hash_key(key) != key
        assert key not in json.dumps(
            {c.name: str(getattr(row, c.key)) for c in ApiClientRow.__table__.c}
        )


@pytest.mark.parametrize(
    ("headers", "challenge", "message"),
    [
        ({}, "Bearer", "missing API key"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "invalid_request", "must be 'Bearer sk_"),
        ({"Authorization": "Bearer sk_not-a-key"}, "invalid_token", "unknown or revoked"),
        ({"Authorization": "Bearer "}, "invalid_request", "must be 'Bearer sk_"),
    ],
    ids=["missing", "other-scheme", "wrong-key", "empty"],
)
def test_no_or_wrong_key_is_401_with_a_bearer_challenge(
    clean_db, http, order_data, headers, challenge, message
):
    new_client(clean_db)
    for response in (
        http.post("/orders", json=order_data(), headers=headers),
        http.get("/orders/ord-x", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert challenge in response.headers["www-authenticate"]
        assert message in response.json()["detail"]
    assert count(clean_db, OrderPlacementRow) == 0


def test_a_revoked_key_is_401_at_once(clean_db, http, order_data):
    key = new_client(clean_db)
    assert http.post("/orders", json=order_data(), headers=bearer(key)).status_code == 202
    with session_scope(clean_db) as session:
        assert revoke_client(session, "shop") is True
    response = http.post("/orders", json=order_data(), headers=bearer(key))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert count(clean_db, OrderPlacementRow) == 1


def test_health_stays_open(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200


def test_a_body_that_is_not_json_is_415(clean_db, http, order_data):
    key = new_client(clean_db)
    body = json.dumps(order_data())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = bearer(key) | ({"Content-Type": content_type} if content_type else {})
        response = http.post("/orders", content=body, headers=headers)
        assert response.status_code == 415, content_type
        assert "content-type must be application/json" in response.json()["detail"]
    charset = bearer(key) | {"Content-Type": "application/json; charset=utf-8"}
    assert http.post("/orders", content=body, headers=charset).status_code == 202
    assert count(clean_db, OrderPlacementRow) == 1


def test_a_large_body_is_413_with_or_without_content_length(clean_db, http, order_data):
    key = new_client(clean_db)
    big = json.dumps(order_data(customer_note="x" * 5000)).encode()
    headers = bearer(key) | {"Content-Type": "application/json"}
    assert http.post("/orders", content=big, headers=headers).status_code == 413

    def chunked() -> Iterator[bytes]:  # an iterator body goes out chunked, no Content-Length
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    response = http.post("/orders", content=chunked(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "body over 4096 bytes"}
    assert count(clean_db, OrderPlacementRow) == 0


def test_a_small_chunked_body_is_accepted(clean_db, http, order_data):
    key = new_client(clean_db)
    body = json.dumps(order_data()).encode()
    headers = bearer(key) | {"Content-Type": "application/json"}
    response = http.post("/orders", content=iter([body[:100], body[100:]]), headers=headers)
    assert response.status_code == 202, response.text


def test_an_invalid_order_is_422_naming_the_field(clean_db, http, order_data):
    key = new_client(clean_db)
    response = http.post("/orders", json=order_data(amount="-1"), headers=bearer(key))
    assert response.status_code == 422
    assert "amount" in response.json()["detail"], "the field is named"
    response = http.post(
        "/orders", content=b"{", headers=bearer(key) | {"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert count(clean_db, OrderPlacementRow) == 0


def test_a_client_over_its_rate_gets_429_with_retry_after(clean_db, order_data, gateway):
    slow = PaymentSettings(intake_rate_per_second=0.5, intake_rate_burst=2)
    fast_key, other_key = new_client(clean_db, "fast"), new_client(clean_db, "other")
    with TestClient(create_app(clean_db, settings=slow, gateway=gateway)) as http:
        codes = [
            http.post("/orders", json=order_data(), headers=bearer(fast_key)).status_code
            for _ in range(3)
        ]
        assert codes == [202, 202, 429]
        refused = http.post("/orders", json=order_data(), headers=bearer(fast_key))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert "'fast' is over its rate limit" in refused.json()["detail"]
        # another client has its own bucket
        assert http.post("/orders", json=order_data(), headers=bearer(other_key)).status_code == 202
    assert count(clean_db, OrderPlacementRow) == 3


def test_a_client_reads_only_its_own_orders(clean_db, http, order_data):
    mine, theirs = new_client(clean_db, "mine"), new_client(clean_db, "theirs")
    order = order_data()
    assert http.post("/orders", json=order, headers=bearer(mine)).status_code == 202
    with session_scope(clean_db) as session:  # what validation would write
        session.add(
            OrderRow(
                order_id=order["order_id"],
                status="validated",
                customer_email=order["customer_email"],
                amount=order["amount"],
                currency=order["currency"],
                payload=order,
            )
        )
    own = http.get(f"/orders/{order['order_id']}", headers=bearer(mine))
    assert own.status_code == 200
    assert own.json()["status"] == "validated"
    other = http.get(f"/orders/{order['order_id']}", headers=bearer(theirs))
    assert other.status_code == 404

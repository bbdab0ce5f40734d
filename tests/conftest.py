"""Shared fixtures: a fresh PostgreSQL database per test session and the real gateway process."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from include.gateway.admin import GatewayAdmin
from include.gateway.tokens import FIXED_TOKENS, card_brand
from include.payments.catalog import seed_catalog
from include.payments.database import COMPONENTS, payments_engine
from include.payments.deps import PaymentDeps
from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.services.front_door import route_everything_to
from include.workflow import workflow_env
from segue.rollout.provider import REFRESH_SECONDS
from segue.store.engine import session_scope
from tools.broker import fresh_vhost
from tools.gateway import GatewayProcess, start_gateway
from tools.sandbox import fresh_database

TEST_STOCK = 100

# The library learns of the payment workflow from SEGUE_* variables, as every process does.
for _name, _value in workflow_env().items():
    os.environ.setdefault(_name, _value)
# The suite's front door hands DAG-bound orders over one run each (the tests written for it);
# the batched paths' tests (tests/dags/test_batch_*, tests/e2e/test_batch_*) turn batching on.
os.environ.setdefault("SEGUE_FRONT_DOOR_BATCH", "false")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own for this test session, dropped afterwards."""
    with fresh_database(f"segue_test_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of its own for this test session, deleted afterwards."""
    with fresh_vhost(f"segue-test-{os.getpid()}") as url:
        yield url


@pytest.fixture
def fresh_amqp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A RabbitMQ vhost for one test, for tests whose queues must start empty (about 2 s)."""
    with fresh_vhost(f"segue-test-{os.getpid()}-{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture(scope="session")
def engine(pg_url: str) -> Engine:
    return payments_engine(pg_url)


def reset_tables(engine: Engine, stock: int = TEST_STOCK) -> None:
    """Empty every business table (every component's) and seed the catalog with ``stock``
    units per SKU; the version tables stay."""
    tables = [table for component in COMPONENTS for table in component.metadata.sorted_tables]
    with session_scope(engine) as session:
        if engine.dialect.name == "postgresql":
            names = ", ".join(table.name for table in tables)
            session.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        else:
            for table in reversed(tables):
                session.execute(table.delete())
        seed_catalog(session, stock=stock)


@pytest.fixture
def clean_db(engine: Engine) -> Engine:
    """The business store, emptied and seeded with TEST_STOCK units of each catalog SKU."""
    reset_tables(engine)
    return engine


@pytest.fixture(scope="session")
def gateway_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The real gateway simulator in its own process, with no random failures."""
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with start_gateway(failure_rate=0, log_path=log_path) as process:
        yield process


@pytest.fixture
def gateway_url(gateway_process: GatewayProcess) -> str:
    """The gateway's URL, with its ledger and faults reset for this test."""
    GatewayAdmin.of(gateway_process).reset()
    return gateway_process.url


@pytest.fixture
def gateway_admin(gateway_process: GatewayProcess, gateway_url: str) -> GatewayAdmin:
    """The admin API (with its token) of the session's gateway, reset for this test."""
    return GatewayAdmin.of(gateway_process)


@pytest.fixture
def deps(clean_db: Engine, gateway_url: str) -> Iterator[PaymentDeps]:
    client = GatewayClient(gateway_url, timeout_seconds=2.0)
    yield PaymentDeps(engine=clean_db, gateway=client)
    client.close()


# Orders name their card by a gateway token (include/gateway/tokens.py); the test tokens stand
# for the gateway's test cards. Test card numbers appear only in gateway requests.
GOOD_TOKEN = "pm_card_visa"
DECLINED_TOKEN = "pm_card_chargeDeclined"
INSUFFICIENT_FUNDS_TOKEN = "pm_card_chargeDeclinedInsufficientFunds"


def order_of(data: dict[str, object]) -> Order:
    """The Order of raw input naming a fixed test token, with the last four digits and brand the
    gateway would tell (what ``payment_methods.order_from_input`` asks the gateway for)."""
    number = FIXED_TOKENS[str(data["payment_method"])]
    return Order.model_validate(
        {**data, "card_last4": number[-4:], "card_brand": card_brand(number)}
    )


@pytest.fixture
def order_data() -> object:
    """A factory of valid raw orders (as DAG conf or JSON would carry them)."""

    def make(**overrides: object) -> dict[str, object]:
        data: dict[str, object] = {
            "order_id": f"ord-test-{uuid.uuid4().hex[:16]}",
            "customer_email": "ada@example.com",
            "payment_method": GOOD_TOKEN,
            "amount": "49.99",
            "currency": "USD",
            "items": [{"sku": "SKU-MUG", "quantity": 2}, {"sku": "SKU-TEE", "quantity": 1}],
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB",
            },
        }
        data.update(overrides)
        return data

    return make


def intake_api(engine: Engine, gateway: GatewayClient, **options: object) -> TestClient:
    """The order intake's app over ``engine`` with an API key of its own on every request.

    :param engine: the business store.
    :param gateway: the gateway client the intake tokenizes cards and looks tokens up with.
    :param options: more ``create_app`` options (``route=``, ``settings=``, ...).
    """
    from include.services.api_clients import create_client
    from include.services.intake_http import create_app

    with session_scope(engine) as session:
        key = create_client(session, f"test-{uuid.uuid4().hex[:8]}")
    app = create_app(engine, None, gateway=gateway, **options)  # type: ignore[arg-type]
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def pin_split(engine: Engine, path: str, reason: str) -> None:
    """Send every new order to ``path`` (a new version of the traffic split), then wait out the
    flag provider's staleness bound, so this process's next decision follows the new version.

    :param engine: the business store.
    :param path: the path every new order takes.
    :param reason: why (recorded in the flag's history).
    """
    route_everything_to(engine, path, actor="test", reason=reason)
    time.sleep(REFRESH_SECONDS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist's ``--dist loadgroup`` (pyproject's addopts): each
    module runs whole on one worker (its module fixtures are set up once), and every test under
    tests/e2e runs on the same worker, which starts the one Airflow they share."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        module = item.nodeid.split("::", 1)[0]
        group = "e2e" if module.startswith("tests/e2e/") else module
        item.add_marker(pytest.mark.xdist_group(group))

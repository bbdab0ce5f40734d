"""Fixtures for the payment services: their specs over the test store and gateway, and a bus.

The bus is the library's test kit (``segue.testing.InMemoryBus``): it calls handlers directly,
one transaction per delivery, without inbox or outbox; ``deliver`` hands one event to one
service, ``run`` feeds every emitted event to every subscribed service until nothing is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, func, select

from include.payments.events import OrderPlaced
from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.tables import OrderRow, StockRow
from include.services import payment_services
from segue.bus.handlers import ServiceSpec
from segue.events.envelope import Envelope
from segue.store.engine import session_scope
from segue.testing import InMemoryBus
from tests.conftest import order_of


@pytest.fixture
def gateway(gateway_url: str) -> Iterator[GatewayClient]:
    client = GatewayClient(gateway_url, timeout_seconds=2.0)
    yield client
    client.close()


@pytest.fixture
def services(gateway: GatewayClient) -> dict[str, ServiceSpec]:
    return {spec.name: spec for spec in payment_services(gateway)}


@pytest.fixture
def bus(clean_db: Engine, services: dict[str, ServiceSpec]) -> InMemoryBus:
    """The payment services on the test kit's bus, in flow order, over the clean store."""
    return InMemoryBus(clean_db, services.values())


@pytest.fixture
def make_order(order_data: Callable[..., dict[str, object]]) -> Callable[..., Order]:
    """A factory of valid orders; keyword arguments override fields of the raw order."""
    return lambda **overrides: order_of(order_data(**overrides))


def placed(order: Order) -> Envelope:
    return Envelope.create(OrderPlaced(order=order), source="test", subject=order.order_id)


@pytest.fixture
def order_placed() -> Callable[[Order], Envelope]:
    """The OrderPlaced envelope of an order (as intake would send it)."""
    return placed


@dataclass
class Store:
    """Reads of the business store for assertions."""

    engine: Engine

    def count(self, table: type, **where: object) -> int:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(getattr(table, column) == value)
        with session_scope(self.engine) as session:
            return int(session.scalar(query) or 0)

    def stock(self, sku: str) -> int:
        with session_scope(self.engine) as session:
            return session.get(StockRow, sku).available

    def order(self, order_id: str) -> OrderRow | None:
        with session_scope(self.engine) as session:
            return session.get(OrderRow, order_id)


@pytest.fixture
def store(clean_db: Engine) -> Store:
    return Store(clean_db)


def types_of(envelopes: Iterable[Envelope]) -> list[str]:
    """Event types without the ``segue.payments.`` prefix, in order."""
    return [envelope.type.rsplit(".", 1)[-1] for envelope in envelopes]


@pytest.fixture
def names() -> Callable[[Iterable[Envelope]], list[str]]:
    return types_of

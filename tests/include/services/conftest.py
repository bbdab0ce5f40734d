"""Fixtures for the payment services: their specs over the test store and gateway, and a bus.

The bus calls handlers directly, one transaction per delivery, the way the runtime will
(without inbox or outbox): ``deliver`` hands one event to one service, ``run`` feeds every
emitted event to every subscribed service until nothing is left.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, func, select

from include.payments.events import OrderPlaced
from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.tables import OrderRow, StockRow
from include.services import payment_services
from segue.bus.handlers import HandlerContext, ServiceSpec
from segue.events.envelope import Envelope
from segue.store.engine import session_scope


@dataclass
class Bus:
    """Delivers events to the services' handlers and records what they emit."""

    engine: Engine
    services: dict[str, ServiceSpec]
    log: list[Envelope] = field(default_factory=list)

    def deliver(self, service: str, envelope: Envelope) -> list[Envelope]:
        """Handle ``envelope`` in ``service`` in one transaction; the events it emitted."""
        spec = self.services[service]
        handler = spec.handler_for(envelope.type)
        assert handler is not None, f"{service} does not consume {envelope.type}"
        with session_scope(self.engine) as session:
            ctx = HandlerContext(spec.name, envelope, session)
            handler(ctx, envelope.data)
        self.log.extend(ctx.emitted)
        return ctx.emitted

    def subscribers(self, event_type: str) -> list[str]:
        return [name for name, spec in self.services.items() if event_type in spec.handlers]

    def run(self, *envelopes: Envelope, order: Iterable[str] | None = None) -> list[Envelope]:
        """Deliver ``envelopes`` and everything they cause, breadth first; all events emitted.

        ``order`` names the services in the order they get each event (default: flow order).
        """
        ranking = list(order or self.services)
        queue = deque(envelopes)
        emitted: list[Envelope] = []
        while queue:
            envelope = queue.popleft()
            for service in sorted(self.subscribers(envelope.type), key=ranking.index):
                new = self.deliver(service, envelope)
                emitted.extend(new)
                queue.extend(new)
        return emitted


@pytest.fixture
def gateway(gateway_url: str) -> Iterator[GatewayClient]:
    client = GatewayClient(gateway_url, timeout_seconds=2.0)
    yield client
    client.close()


@pytest.fixture
def services(gateway: GatewayClient) -> dict[str, ServiceSpec]:
    return {spec.name: spec for spec in payment_services(gateway)}


@pytest.fixture
def bus(clean_db: Engine, services: dict[str, ServiceSpec]) -> Bus:
    return Bus(clean_db, services)


@pytest.fixture
def make_order(order_data: Callable[..., dict[str, object]]) -> Callable[..., Order]:
    """A factory of valid orders; keyword arguments override fields of the raw order."""
    return lambda **overrides: Order.model_validate(order_data(**overrides))


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

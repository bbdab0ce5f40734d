"""The whole choreography as real processes: services, event log and intake on a fresh vhost.

Orders go in through the intake's HTTP API; the invariants are read back from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from include.payments.steps import TERMINAL
from include.payments.tables import OrderRow, StockRow
from include.services import EVENT_PATH_PROCESSES
from include.services.api_clients import create_client
from include.services.front_door import route_everything_to
from segue.store.engine import session_scope
from tests.conftest import DECLINED_TOKEN, reset_tables
from tools.chaos.orders import SCARCE_SKU
from tools.chaos.orders import order_mix as mix_of
from tools.ports import unused_port
from tools.services import ServiceProcess, start_services

STOCK = 1_000_000


@dataclass
class Choreography:
    """The running services and a way to place orders through the intake."""

    services: dict[str, ServiceProcess]
    intake_url: str
    engine: Engine
    api_key: str
    intake_urls: tuple[str, ...] = ()  # every intake replica's (``intake_url`` is the first)

    def place(self, order: dict[str, object]) -> str:
        """POST the order to an intake (with replicas, one chosen by the order id)."""
        urls = self.intake_urls or (self.intake_url,)
        url = urls[zlib.crc32(str(order["order_id"]).encode()) % len(urls)]
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = httpx.post(f"{url}/orders", json=order, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        return str(order["order_id"])

    def wait_terminal(self, order_ids: list[str], timeout: float = 120.0) -> dict[str, str]:
        """Wait until every order is completed or failed; their statuses."""
        deadline = time.monotonic() + timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            with session_scope(self.engine) as session:
                rows = session.execute(
                    select(OrderRow.order_id, OrderRow.status).where(
                        OrderRow.order_id.in_(order_ids)
                    )
                ).all()
            statuses = dict(rows)  # type: ignore[arg-type]
            done = [oid for oid in order_ids if statuses.get(oid) in TERMINAL]
            if len(done) == len(order_ids):
                return statuses
            time.sleep(0.25)
        waiting = [oid for oid in order_ids if statuses.get(oid) not in TERMINAL]
        logs = "\n".join(f"--- {s.name}\n{s.log_tail(8)}" for s in self.services.values())
        raise AssertionError(f"{len(waiting)} orders not terminal, e.g. {waiting[:3]}\n{logs}")


def seed_scarce_sku(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.merge(StockRow(sku=SCARCE_SKU, name="Sold out", available=0))


@contextlib.contextmanager
def run_choreography(
    amqp_url: str,
    engine: Engine,
    gateway_url: str,
    log_dir: Path,
    processes: Mapping[str, str] = EVENT_PATH_PROCESSES,
    **extra_env: str,
) -> Iterator[Choreography]:
    """Every event-path process on fresh tables, with ``extra_env`` on top of the settings.

    ``processes`` maps a process name to its module (several names may run one module: replicas).
    """
    reset_tables(engine, stock=STOCK)
    seed_scarce_sku(engine)
    with session_scope(engine) as session:
        api_key = create_client(session, "fault-tests")
    route_everything_to(engine, "events", actor="tests", reason="the choreography under faults")
    intake = EVENT_PATH_PROCESSES["intake"]
    ports = {name: unused_port() for name, module in processes.items() if module == intake}
    with start_services(
        processes,
        database_url=str(engine.url.render_as_string(hide_password=False)),
        amqp_url=amqp_url,
        gateway_url=gateway_url,
        log_dir=log_dir,
        extra_env=extra_env,
        env_of={name: {"SEGUE_INTAKE_PORT": str(port)} for name, port in ports.items()},
    ) as services:
        urls = tuple(f"http://127.0.0.1:{port}" for port in ports.values())
        yield Choreography(services, urls[0], engine, api_key, urls)


@pytest.fixture
def choreography(
    fresh_amqp_url: str, engine: Engine, gateway_url: str, tmp_path: Path
) -> Iterator[Choreography]:
    with run_choreography(fresh_amqp_url, engine, gateway_url, tmp_path / "services") as running:
        yield running


OrderFactory = Callable[..., dict[str, object]]


def order_mix(order_data: OrderFactory, count: int) -> dict[str, str]:
    """``count`` orders as ``order_id -> kind``: 1 in 10 declined, 1 in 10 out of stock."""
    return mix_of(count)


def raw_order(order_data: OrderFactory, order_id: str, kind: str) -> dict[str, object]:
    if kind == "declined":
        return order_data(order_id=order_id, payment_method=DECLINED_TOKEN)
    if kind == "out_of_stock":
        return order_data(
            order_id=order_id,
            items=[{"sku": "SKU-MUG", "quantity": 1}, {"sku": SCARCE_SKU, "quantity": 1}],
        )
    return order_data(order_id=order_id)


def count(engine: Engine, table: type, **where: object) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(getattr(table, column) == value)
        return int(session.scalar(query) or 0)

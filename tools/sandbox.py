"""An isolated, throwaway Segue: fresh PostgreSQL databases, the gateway, and a real Airflow.

The end-to-end tests and the benchmarks both need one; this is the single place that builds it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from include.payments.catalog import seed_catalog
from include.payments.database import payments_engine
from segue.store.engine import session_scope, shared_engine
from segue.store.postgres import drop_database, ensure_database
from tools.airflow_stack import AirflowStack
from tools.broker import fresh_vhost
from tools.gateway import GatewayProcess, start_gateway
from tools.ports import unused_port

POSTGRES = os.environ.get("SEGUE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
# How long a sandbox's Airflow may take to report healthy: on the shared 2-core machines at load
# average 30-60 it took over 300 s (2026-12-06).
START_TIMEOUT = float(os.environ.get("SEGUE_TEST_AIRFLOW_START_SECONDS", "600"))


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """A PostgreSQL database created empty for the block and dropped after it."""
    url = f"{POSTGRES}/{name}"
    drop_database(url)
    ensure_database(url)
    try:
        yield url
    finally:
        shared_engine.cache_clear()  # its pooled connections would block the DROP
        drop_database(url)


@dataclass
class Sandbox:
    business_url: str
    gateway: GatewayProcess
    airflow: AirflowStack


@contextmanager
def _sandbox_vhost() -> Iterator[dict[str, str]]:
    """``{"SEGUE_AMQP_URL": <fresh vhost>}``, or nothing where RabbitMQ is not administrable."""
    if shutil.which("rabbitmqctl") is None:
        yield {}
        return
    with fresh_vhost(f"segue-sandbox-{os.getpid()}") as amqp_url:
        yield {"SEGUE_AMQP_URL": amqp_url}


@contextmanager
def airflow_sandbox(
    home: Path,
    business_url: str,
    gateway: GatewayProcess,
    *,
    segue_env: dict[str, str] | None = None,
) -> Iterator[AirflowStack]:
    """A real Airflow on a free port with its own metadata database, wired to the given
    business store and gateway, and to a RabbitMQ vhost of its own (``SEGUE_AMQP_URL``, also
    the ``segue_amqp`` connection) when ``rabbitmqctl`` is here; the catalog is seeded first."""
    with session_scope(payments_engine(business_url)) as session:
        seed_catalog(session)
    with (
        fresh_database(f"segue_sandbox_airflow_{os.getpid()}") as metadata_url,
        _sandbox_vhost() as amqp_env,
    ):
        stack = AirflowStack(
            home=home,
            metadata_url=metadata_url,
            port=unused_port(),
            dag_refresh_seconds=5,
            extra_env={
                "SEGUE_DATABASE_URL": business_url,
                "SEGUE_GATEWAY_URL": gateway.url,
                **amqp_env,
                **(segue_env or {}),
            },
        )
        stack.start()
        try:
            stack.wait_ready(timeout=START_TIMEOUT)
            yield stack
        finally:
            stack.stop()


@contextmanager
def sandbox(
    home: Path, *, failure_rate: str = "0", segue_env: dict[str, str] | None = None
) -> Iterator[Sandbox]:
    """Everything at once: business database, gateway and Airflow (for benchmarks)."""
    with (
        fresh_database(f"segue_sandbox_{os.getpid()}") as business_url,
        start_gateway(failure_rate=failure_rate, log_path=home / "gateway.log") as gateway,
        airflow_sandbox(home / "airflow", business_url, gateway, segue_env=segue_env) as stack,
    ):
        yield Sandbox(business_url, gateway, stack)

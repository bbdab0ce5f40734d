"""A real Airflow 3 for end-to-end tests: scheduler, dag-processor, triggerer and api-server.

Started once per session with ``airflow standalone`` (as ``make run`` does) on a fresh
PostgreSQL metadata database, pointed at the session's business database and gateway.
Retry delays are shortened to seconds so retry paths finish quickly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from include.gateway.process import GatewayProcess, free_port
from include.payments.catalog import seed_catalog
from segue.local.airflow_api import AirflowApi
from segue.local.airflow_stack import AirflowStack
from segue.store.engine import session_scope
from segue.store.postgres import drop_database, ensure_database

POSTGRES = os.environ.get("SEGUE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
E2E_RETRIES = 2


@pytest.fixture(scope="session")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory,
    pg_url: str,
    engine: Engine,
    gateway_process: GatewayProcess,
) -> Iterator[AirflowStack]:
    metadata_url = f"{POSTGRES}/segue_test_airflow_{os.getpid()}"
    drop_database(metadata_url)
    ensure_database(metadata_url)
    with session_scope(engine) as session:
        seed_catalog(session)
    stack = AirflowStack(
        home=tmp_path_factory.mktemp("airflow-home"),
        metadata_url=metadata_url,
        port=free_port(),
        dag_refresh_seconds=5,
        extra_env={
            "SEGUE_DATABASE_URL": pg_url,
            "SEGUE_GATEWAY_URL": gateway_process.url,
            "SEGUE_RETRIES": str(E2E_RETRIES),
            "SEGUE_RETRY_DELAY_SECONDS": "1",
            "SEGUE_MAX_RETRY_DELAY_SECONDS": "2",
        },
    )
    stack.start()
    try:
        stack.wait_ready(timeout=300)
        yield stack
    finally:
        stack.stop()
        drop_database(metadata_url)


@pytest.fixture(scope="session")
def airflow_api(airflow_stack: AirflowStack) -> Iterator[AirflowApi]:
    api = airflow_stack.api()
    api.wait_for_dag("payment_pipeline")
    yield api
    api.close()

"""A real Airflow 3 for end-to-end tests: scheduler, dag-processor, triggerer and api-server.

Started once per session with ``airflow standalone`` (as ``make run`` does) on a fresh
PostgreSQL metadata database, pointed at the session's business database and gateway.
Retry delays are shortened to seconds so retry paths finish quickly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from include.gateway.process import GatewayProcess
from segue.local.airflow_api import AirflowApi
from segue.local.airflow_stack import AirflowStack
from segue.local.sandbox import airflow_sandbox

E2E_RETRIES = 2


@pytest.fixture(scope="session")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, gateway_process: GatewayProcess
) -> Iterator[AirflowStack]:
    segue_env = {
        "SEGUE_RETRIES": str(E2E_RETRIES),
        "SEGUE_RETRY_DELAY_SECONDS": "1",
        "SEGUE_MAX_RETRY_DELAY_SECONDS": "2",
    }
    home = tmp_path_factory.mktemp("airflow-home")
    with airflow_sandbox(home, pg_url, gateway_process, segue_env=segue_env) as stack:
        yield stack


@pytest.fixture(scope="session")
def airflow_api(airflow_stack: AirflowStack) -> Iterator[AirflowApi]:
    api = airflow_stack.api()
    api.wait_for_dag("payment_pipeline")
    yield api
    api.close()

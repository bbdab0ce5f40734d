"""docker-compose.yaml runs the event path and Airflow on the CeleryExecutor the way `make run`
wires them: one service per process of include/services (replicas for the competing consumers),
the intake published, the ``segue_amqp`` connection, Redis as Celery's broker, workers.

Static checks, as in tests/test_docker_compose.py (Docker cannot run here); the worker's
healthcheck command runs for real in tests/e2e/test_celery_executor.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from include.payments.settings import PaymentSettings
from include.services import SERVICE_MODULES
from segue.settings import SegueSettings
from tests.test_docker_compose import COMPOSE_FILE, EVENT_PATH_SERVICES
from tools.airflow_stack import amqp_conn_uri
from tools.cli import main as segue_main

CONSUMERS = (*SERVICE_MODULES, "event-log")  # replicated in tests/faults/test_replicas.py
ONE_SHOTS = {"airflow-init", "segue-init"}
VARIABLE = re.compile(r"\$\{([A-Z_]+)(?::\?[^}]*|:-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` as compose would pass it with ``env`` set (``${X:?..}``, ``${X:-default}``)."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is None:
            raise KeyError(f"{name} is required")
        return default

    return VARIABLE.sub(one, value)


def replicas(spec: dict[str, Any], env: dict[str, str] | None = None) -> int:
    return int(interpolate(str(spec["deploy"]["replicas"]), env or {}))


def depends(spec: dict[str, Any]) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in spec.get("depends_on", {}).items()}


# --- the event path --------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(EVENT_PATH_SERVICES))
def test_each_event_path_process_is_a_service(
    services: dict[str, Any], compose: dict[str, Any], service: str
):
    spec = services[service]
    assert spec["command"] == ["python", "-m", EVENT_PATH_SERVICES[service]]
    assert compose["x-segue-env"].items() <= spec["environment"].items()
    assert spec["environment"]["SEGUE_SERVICE_HEALTH_PORT"] == "8110"
    assert depends(spec)["rabbitmq"] == "service_healthy"
    assert depends(spec)["segue-init"] == "service_completed_successfully"
    assert spec["restart"] == "always"


@pytest.mark.parametrize("service", CONSUMERS)
def test_consumers_run_replicas(services: dict[str, Any], service: str):
    spec = services[service]
    assert replicas(spec) >= 2
    assert replicas(spec, {"SEGUE_SERVICE_REPLICAS": "5"}) == 5


@pytest.mark.parametrize("service", ["charge", "intake"])
def test_gateway_callers_wait_for_the_gateway(services: dict[str, Any], service: str):
    assert depends(services[service])["gateway"] == "service_healthy"


def test_the_intake_listens_on_all_addresses_published_on_loopback(services: dict[str, Any]):
    intake = services["intake"]
    env = intake["environment"]
    assert env["SEGUE_INTAKE_HOST"] == "0.0.0.0"
    assert intake["ports"] == [f"127.0.0.1:{env['SEGUE_INTAKE_PORT']}:{env['SEGUE_INTAKE_PORT']}"]
    assert replicas(intake) == 1  # one host port; replicas go behind a load balancer


def test_the_handover_logs_in_to_the_api_server(services: dict[str, Any]):
    handover = services["airflow-handover"]
    env = handover["environment"]
    assert env["SEGUE_AIRFLOW_API_URL"] == "http://airflow-apiserver:8080"
    assert env["SEGUE_AIRFLOW_USERNAME"] == "admin"
    assert "${AIRFLOW_ADMIN_PASSWORD:?" in env["SEGUE_AIRFLOW_PASSWORD"]
    assert depends(handover)["airflow-apiserver"] == "service_healthy"


def test_segue_init_migrates_and_seeds_with_the_segue_command(services: dict[str, Any]):
    init = services["segue-init"]
    assert init["command"] == ["python", "-m", "tools.cli", "init-db"]
    assert init["restart"] == "no"
    assert depends(init) == {"postgres": "service_healthy"}
    with pytest.raises(SystemExit) as exited:
        segue_main(["init-db", "--help"])  # the command the image's `segue` script runs
    assert exited.value.code == 0


def test_project_image_commands_survive_its_entrypoint(services: dict[str, Any]):
    """apache/airflow's entrypoint execs ``bash`` and ``python`` commands as they are and runs
    anything else as ``airflow <command>``: a service of our image starts with one of those."""
    for name, spec in services.items():
        if spec.get("image", "").startswith("segue-airflow:"):
            assert spec["command"][0] in {"airflow", "python", "bash"}, name


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]):
    for name, spec in services.items():
        if name in ONE_SHOTS:
            continue
        check = spec.get("healthcheck", {})
        assert not check.get("disable") and check.get("test"), name


def test_service_variables_name_real_settings(services: dict[str, Any]):
    fields = set(SegueSettings.model_fields) | set(PaymentSettings.model_fields)
    for service in EVENT_PATH_SERVICES:
        names = [n for n in services[service]["environment"] if n.startswith("SEGUE_")]
        unknown = {n for n in names if n.removeprefix("SEGUE_").lower() not in fields}
        assert not unknown, (service, unknown)


# --- Airflow: the segue_amqp connection and the CeleryExecutor -------------------------------


def test_the_segue_amqp_connection_is_the_event_path_broker(compose: dict[str, Any]):
    env = compose["x-airflow-common"]["environment"]
    secrets = {"RABBITMQ_PASSWORD": "pw-1", "POSTGRES_PASSWORD": "pw-2"}
    amqp_url = interpolate(env["SEGUE_AMQP_URL"], secrets)
    assert interpolate(env["AIRFLOW_CONN_SEGUE_AMQP"], secrets) == amqp_conn_uri(amqp_url)
    assert amqp_conn_uri(amqp_url) == "amqp://segue:pw-1@rabbitmq:5672/%2F"


def test_celery_broker_is_redis_with_its_password(compose: dict[str, Any]):
    env = compose["x-airflow-common"]["environment"]
    broker = interpolate(env["AIRFLOW__CELERY__BROKER_URL"], {"REDIS_PASSWORD": "pw"})
    assert broker == "redis://:pw@redis:6379/0"
    redis = compose["services"]["redis"]
    assert "${REDIS_PASSWORD:?" in " ".join(redis["command"])
    assert "ports" not in redis  # internal only


@pytest.mark.parametrize(
    ("service", "command"),
    [
        ("airflow-scheduler", ["python", "-m", "tools.celery_compat", "scheduler"]),
        ("airflow-worker", ["python", "-m", "tools.celery_compat", "celery", "worker"]),
    ],
)
def test_celery_components_run_through_the_compat_shim(
    services: dict[str, Any], service: str, command: list[str]
):
    assert services[service]["command"] == command
    assert depends(services[service])["redis"] == "service_healthy"


def test_workers_are_replicated_and_reach_what_tasks_call(services: dict[str, Any]):
    worker = services["airflow-worker"]
    assert replicas(worker) >= 2
    assert replicas(worker, {"AIRFLOW_WORKER_REPLICAS": "4"}) == 4
    for needed in ("gateway", "rabbitmq", "redis", "airflow-apiserver"):
        assert depends(worker)[needed] == "service_healthy"

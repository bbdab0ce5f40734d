"""The Docker set-up is valid Compose and wires the stack the way the project needs.

Docker cannot run on the development machines, so the compose file is checked statically: against
the Compose Specification's JSON schema (a pinned copy, see tests/fixtures/README.md), then for
the properties Segue relies on. The helper scripts in docker/ and the healthcheck one-liners are
run for real, against the local PostgreSQL and a stub HTTP server.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
import uuid
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
import yaml
from jsonschema import validators
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from sqlalchemy.engine import make_url

from include.payments.settings import PaymentSettings
from include.services import AIRFLOW_PROCESSES, EVENT_PATH_PROCESSES
from segue.settings import SegueSettings
from segue.store.postgres import drop_database

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = ROOT / "tests" / "fixtures" / "compose-spec.json"
AIRFLOW_INIT_SCRIPT = ROOT / "docker" / "airflow-init.sh"
POSTGRES_INIT_SCRIPT = ROOT / "docker" / "postgres" / "init-databases.sh"
GENERATE_ENV_SCRIPT = ROOT / "docker" / "generate-env.sh"
POSTGRES = os.environ.get("SEGUE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")

AIRFLOW_VERSION = "3.3.2"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-worker",
    "airflow-dag-processor",
    "airflow-triggerer",
)
LONG_RUNNING_AIRFLOW_SERVICES = AIRFLOW_SERVICES[1:]
# Services whose processes call the gateway or the broker: with CeleryExecutor the workers run
# the tasks, and the triggerer runs the RabbitMQ triggers.
GATEWAY_AND_BROKER_CLIENTS = ("airflow-worker", "airflow-triggerer")
# The event path: one compose service per process `make run` starts (include/services), plus
# segue-init, the one-shot that migrates and seeds the business store.
EVENT_PATH_SERVICES = {**EVENT_PATH_PROCESSES, **AIRFLOW_PROCESSES}
LONG_RUNNING_SEGUE_SERVICES = tuple(EVENT_PATH_SERVICES)
POSTGRES_PASSWORD = (
    "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD, e.g. run bash docker/generate-env.sh}"
)
SEGUE_ENV = {
    "SEGUE_DATABASE_URL": f"postgresql+psycopg://airflow:{POSTGRES_PASSWORD}@postgres:5432/segue",
    "SEGUE_GATEWAY_URL": "http://gateway:8099",
    "SEGUE_AMQP_URL": (
        "amqp://segue:${RABBITMQ_PASSWORD:?set RABBITMQ_PASSWORD, e.g. run bash "
        "docker/generate-env.sh}@rabbitmq:5672//"
    ),
}


# --- loading -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as Compose sees it, anchors and merge keys resolved."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    """A validator of the draft the schema declares (no silent fallback to another draft)."""
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = validators.validator_for(schema, default=None)
    assert cls is not None, f"unknown $schema {schema.get('$schema')!r}"
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def unshared(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy whose merged mappings no longer share objects (deepcopy would keep sharing)."""
    return json.loads(json.dumps(document))


def all_error_paths(errors: list[jsonschema.ValidationError]) -> set[str]:
    """JSON paths of the errors and of the errors nested in them (oneOf/anyOf branches)."""
    paths: set[str] = set()
    for error in errors:
        paths.add(error.json_path)
        paths |= all_error_paths(list(error.context or ()))
    return paths


# --- the Compose Specification -------------------------------------------------------------


def test_schema_fixture_is_the_2020_12_compose_spec(validator: jsonschema.protocols.Validator):
    assert validator.schema["title"] == "Compose Specification"
    assert isinstance(validator, validators.Draft202012Validator)


def test_compose_file_matches_compose_spec(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
):
    errors = sorted(validator.iter_errors(compose), key=lambda error: error.json_path)
    assert not errors, "\n".join(f"{error.json_path}: {error.message}" for error in errors)


def _ports_not_a_list(document: dict[str, Any]) -> None:
    document["services"]["rabbitmq"]["ports"] = "not-a-list"


def _unknown_top_level_key(document: dict[str, Any]) -> None:
    document["servicez"] = {}


def _unknown_service_key(document: dict[str, Any]) -> None:
    document["services"]["gateway"]["healthcheck_url"] = "http://localhost:8099/healthz"


def _unknown_depends_on_condition(document: dict[str, Any]) -> None:
    document["services"]["airflow-scheduler"]["depends_on"]["postgres"]["condition"] = "ready"


def _healthcheck_interval_not_a_string(document: dict[str, Any]) -> None:
    document["services"]["postgres"]["healthcheck"]["interval"] = 10


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        pytest.param(_ports_not_a_list, "$.services.rabbitmq", id="ports-not-a-list"),
        pytest.param(_unknown_top_level_key, "$", id="unknown-top-level-key"),
        pytest.param(_unknown_service_key, "$.services.gateway", id="unknown-service-key"),
        pytest.param(
            _unknown_depends_on_condition,
            "$.services['airflow-scheduler'].depends_on.postgres.condition",
            id="unknown-depends-on-condition",
        ),
        pytest.param(
            _healthcheck_interval_not_a_string,
            "$.services.postgres.healthcheck.interval",
            id="healthcheck-interval-not-a-string",
        ),
    ],
)
def test_schema_rejects_a_broken_copy(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator, mutate: Any, where: str
):
    broken = unshared(compose)
    mutate(broken)
    errors = list(validator.iter_errors(broken))
    assert errors, "the validator accepted a broken compose file"
    assert where in all_error_paths(errors)


# --- services and their wiring -------------------------------------------------------------


def test_required_services_exist(services: dict[str, Any]):
    assert set(services) >= {
        "postgres",
        "rabbitmq",
        "redis",
        "gateway",
        "jaeger",
        *AIRFLOW_SERVICES,
        *EVENT_PATH_SERVICES,
    }


@pytest.mark.parametrize(
    ("service", "image"),
    [
        ("postgres", "postgres:16"),
        ("rabbitmq", "rabbitmq:3.13-management"),
        ("redis", "redis:7.2-bookworm"),
        ("jaeger", "jaegertracing/all-in-one:1.62.0"),
    ],
)
def test_infrastructure_images(services: dict[str, Any], service: str, image: str):
    assert services[service]["image"] == image


@pytest.mark.parametrize("service", [*AIRFLOW_SERVICES, "gateway", *EVENT_PATH_SERVICES])
def test_project_image_is_built_from_the_dockerfile_and_pins_airflow(
    services: dict[str, Any], service: str
):
    spec = services[service]
    assert spec["image"] == f"segue-airflow:{AIRFLOW_VERSION}"
    assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile"}


def _mapping_value(node: yaml.MappingNode, key: str) -> yaml.Node:
    for key_node, value_node in node.value:
        if key_node.value == key:
            return value_node
    raise KeyError(key)


def _merged_nodes(node: yaml.MappingNode) -> list[yaml.Node]:
    return [value for key, value in node.value if key.tag == "tag:yaml.org,2002:merge"]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_merge_the_common_block(service: str):
    """Each Airflow service takes image, env and mounts from x-airflow-common by anchor."""
    root = yaml.compose(COMPOSE_FILE.read_text())
    common = _mapping_value(root, "x-airflow-common")
    common_env = _mapping_value(common, "environment")
    node = _mapping_value(_mapping_value(root, "services"), service)
    assert any(merged is common for merged in _merged_nodes(node))
    try:
        own_env = _mapping_value(node, "environment")
    except KeyError:
        return  # the environment comes whole from the common block
    assert own_env is common_env or any(merged is common_env for merged in _merged_nodes(own_env))


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_share_image_env_and_mounts(
    compose: dict[str, Any], services: dict[str, Any], service: str
):
    common = compose["x-airflow-common"]
    spec = services[service]
    assert spec["image"] == common["image"]
    assert spec["volumes"] == common["volumes"]
    assert spec["user"] == common["user"]
    assert common["environment"].items() <= spec["environment"].items()


def test_airflow_mounts_dags_plugins_and_include(compose: dict[str, Any]):
    mounts = compose["x-airflow-common"]["volumes"]
    for folder in ("dags", "plugins", "include"):
        assert f"./{folder}:/opt/airflow/{folder}" in mounts


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor"),
        (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            f"postgresql+psycopg://airflow:{POSTGRES_PASSWORD}@postgres:5432/airflow",
        ),
        (
            "AIRFLOW__CELERY__RESULT_BACKEND",
            f"db+postgresql+psycopg://airflow:{POSTGRES_PASSWORD}@postgres:5432/airflow",
        ),
        ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://airflow-apiserver:8080/execution/"),
        (
            "AIRFLOW__CORE__AUTH_MANAGER",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        ),
        ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin"),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "false"),
        ("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "true"),
        *SEGUE_ENV.items(),
    ],
)
def test_common_environment(compose: dict[str, Any], name: str, value: str):
    assert compose["x-airflow-common"]["environment"][name] == value


REQUIRED_FROM_ENV = r"\$\{[A-Z_]+:\?[^}]+\}"  # ${VAR:?message}: compose refuses to start without it


@pytest.mark.parametrize(
    ("service", "name"),
    [
        ("airflow-apiserver", "AIRFLOW__API_AUTH__JWT_SECRET"),
        ("airflow-apiserver", "AIRFLOW__CORE__FERNET_KEY"),
        ("airflow-init", "AIRFLOW_ADMIN_PASSWORD"),
        ("rabbitmq", "RABBITMQ_DEFAULT_PASS"),
        ("postgres", "POSTGRES_PASSWORD"),
        ("redis", "REDISCLI_AUTH"),
        ("airflow-handover", "SEGUE_AIRFLOW_PASSWORD"),
    ],
)
def test_secrets_are_required_from_the_environment(
    services: dict[str, Any], service: str, name: str
):
    assert re.fullmatch(REQUIRED_FROM_ENV, services[service]["environment"][name])
    assert "docker/generate-env.sh" in services[service]["environment"][name]


SECRET_NAME = re.compile(r"SECRET|FERNET|PASSWORD|_PASS\b|TOKEN|_KEY\b|_AUTH\b", re.IGNORECASE)
INTERNAL_CREDENTIALS: set[str] = set()  # none: even the unpublished database's password is required


def _environment_entries(document: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(where, variable, value) for every environment entry anywhere in the document."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "environment" and isinstance(value, dict):
                for name, item in value.items():
                    yield path, str(name), str(item)
            else:
                yield from _environment_entries(value, f"{path}.{key}")
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from _environment_entries(item, f"{path}[{index}]")


def test_no_fixed_secret_and_no_default_for_one(compose: dict[str, Any]):
    """A secret is required from the environment (``${VAR:?...}``), never written down."""
    secrets = [
        (where, name, value)
        for where, name, value in _environment_entries(compose)
        if SECRET_NAME.search(name)
        and name not in INTERNAL_CREDENTIALS
        and not name.endswith("_FILE")
    ]
    assert {name for _, name, _ in secrets} >= {
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW_ADMIN_PASSWORD",
        "RABBITMQ_DEFAULT_PASS",
        "POSTGRES_PASSWORD",
        "REDISCLI_AUTH",
        "SEGUE_AIRFLOW_PASSWORD",
    }
    fixed = [(w, n, v) for w, n, v in secrets if not re.fullmatch(REQUIRED_FROM_ENV, v)]
    assert not fixed
    text = COMPOSE_FILE.read_text()
    assert "segue-local-development-jwt-secret" not in text
    assert not re.search(r"\$\{[A-Z_]*(SECRET|FERNET|PASSWORD|TOKEN)[A-Z_]*:?-", text)
    # Passwords inside URLs and commands come from the environment too.
    assert "airflow:airflow@" not in text and "POSTGRES_PASSWORD: airflow" not in text
    for url in _urls_with_credentials(compose):
        assert re.search(r":\$\{[A-Z_]+:\?[^}]+\}@", url), url


def _urls_with_credentials(document: Any) -> Iterator[str]:
    """Every ``scheme://user:password@`` URL in the document's strings."""
    if isinstance(document, dict):
        for value in document.values():
            yield from _urls_with_credentials(value)
    elif isinstance(document, list):
        for value in document:
            yield from _urls_with_credentials(value)
    elif isinstance(document, str):
        yield from re.findall(r"[a-z+]+://[^\s/@]*:[^\s@]*@\S+", document)


def test_the_gateway_generates_its_admin_token_into_a_volume(services: dict[str, Any]):
    gateway = services["gateway"]
    assert "SEGUE_GATEWAY_ADMIN_TOKEN" not in gateway["environment"]
    token_file = gateway["environment"]["SEGUE_GATEWAY_ADMIN_TOKEN_FILE"]
    assert token_file == "/opt/airflow/gateway-secrets/gateway-admin-token"
    assert "gateway-secrets:/opt/airflow/gateway-secrets" in gateway["volumes"]
    assert (
        "RUN mkdir -p /opt/airflow/gateway-secrets && chmod g+rwx,o-rwx "
        "/opt/airflow/gateway-secrets" in dockerfile_instructions()
    )


def test_the_gateway_is_published_on_loopback_only(services: dict[str, Any]):
    ports = services["gateway"].get("ports", [])
    assert all(str(port).startswith("127.0.0.1:") for port in ports), ports


def test_generate_env_writes_fresh_secrets_once(tmp_path: Path):
    from cryptography.fernet import Fernet

    target = tmp_path / ".env"
    result = subprocess.run(
        ["bash", str(GENERATE_ENV_SCRIPT), str(target)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in target.read_text().splitlines() if "=" in line)
    assert set(values) == {
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_FERNET_KEY",
        "RABBITMQ_PASSWORD",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
    }
    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # a valid Fernet key
    assert len(values["AIRFLOW_JWT_SECRET"]) >= 48
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    before = target.read_text()
    again = subprocess.run(
        ["bash", str(GENERATE_ENV_SCRIPT), str(target)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "exists" in again.stderr
    assert target.read_text() == before
    other = tmp_path / "other.env"
    subprocess.run(["bash", str(GENERATE_ENV_SCRIPT), str(other)], check=True, timeout=60)
    assert other.read_text() != before  # random, not a fixed default


def test_airflow_variables_name_real_airflow_options(compose: dict[str, Any]):
    """Every AIRFLOW__SECTION__KEY is an option of the installed Airflow or of its installed
    Celery provider (catches typos)."""
    from airflow.providers.celery.get_provider_info import get_provider_info

    spec = find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    config_yml = Path(next(iter(spec.submodule_search_locations))) / "config_templates/config.yml"
    options = yaml.safe_load(config_yml.read_text())
    options.update(get_provider_info()["config"])
    assert "broker_url" in options["celery"]["options"]
    names = [
        name for name in compose["x-airflow-common"]["environment"] if name.startswith("AIRFLOW__")
    ]
    assert names
    unknown = []
    for name in names:
        section, key = name.removeprefix("AIRFLOW__").lower().split("__", 1)
        if key not in options.get(section, {}).get("options", {}):
            unknown.append(name)
    assert not unknown


def test_segue_variables_name_real_settings(compose: dict[str, Any]):
    names = [
        name for name in compose["x-airflow-common"]["environment"] if name.startswith("SEGUE_")
    ]
    assert set(names) >= set(SEGUE_ENV)
    fields = set(SegueSettings.model_fields) | set(PaymentSettings.model_fields)
    assert {name.removeprefix("SEGUE_").lower() for name in names} <= fields


def test_traces_go_to_jaeger_over_otlp_http(compose: dict[str, Any], services: dict[str, Any]):
    """Task processes and the gateway export to Jaeger's OTLP/HTTP port; its UI on loopback."""
    endpoint = "http://jaeger:4318"
    assert compose["x-airflow-common"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    assert services["gateway"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert services["jaeger"]["ports"] == ["127.0.0.1:16686:16686"]


def test_api_server_listens_on_8080(services: dict[str, Any]):
    assert services["airflow-apiserver"]["command"] == ["airflow", "api-server"]
    assert "8080:8080" in services["airflow-apiserver"]["ports"]


def test_rabbitmq_exposes_amqp_and_management_on_loopback_only(services: dict[str, Any]):
    assert set(services["rabbitmq"]["ports"]) == {"127.0.0.1:5672:5672", "127.0.0.1:15672:15672"}


def test_the_broker_has_no_guest_user_and_the_services_use_its_password(
    compose: dict[str, Any], services: dict[str, Any]
):
    broker = services["rabbitmq"]["environment"]
    assert broker["RABBITMQ_DEFAULT_USER"] == "segue"
    url = compose["x-airflow-common"]["environment"]["SEGUE_AMQP_URL"]
    assert url == f"amqp://segue:{broker['RABBITMQ_DEFAULT_PASS']}@rabbitmq:5672//"
    assert "guest:guest" not in COMPOSE_FILE.read_text()


def test_generate_env_adds_only_what_an_older_env_file_lacks(tmp_path: Path):
    """An .env written before RABBITMQ_PASSWORD (and the database's and Redis's passwords)
    existed gains them; its other values stay."""
    target = tmp_path / ".env"
    older = "AIRFLOW_ADMIN_PASSWORD=a\nAIRFLOW_JWT_SECRET=b\nAIRFLOW_FERNET_KEY=c\n"
    target.write_text(older)
    subprocess.run(["bash", str(GENERATE_ENV_SCRIPT), str(target)], check=True, timeout=60)
    text = target.read_text()
    assert text.startswith(older)
    assert [line.split("=")[0] for line in text.splitlines()[3:]] == [
        "RABBITMQ_PASSWORD",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
    ]


def test_gateway_runs_the_simulator(services: dict[str, Any]):
    assert services["gateway"]["command"] == [
        "python",
        "-m",
        "include.gateway",
        "--host",
        "0.0.0.0",
        "--port",
        "8099",
    ]


def _dependencies(services: dict[str, Any], service: str) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in services[service]["depends_on"].items()}


@pytest.mark.parametrize("service", LONG_RUNNING_AIRFLOW_SERVICES)
def test_airflow_waits_for_postgres_and_init(services: dict[str, Any], service: str):
    depends = _dependencies(services, service)
    assert depends["postgres"] == "service_healthy"
    assert depends["airflow-init"] == "service_completed_successfully"


def test_airflow_init_waits_for_postgres_only(services: dict[str, Any]):
    assert _dependencies(services, "airflow-init") == {"postgres": "service_healthy"}
    assert services["airflow-init"]["restart"] == "no"


@pytest.mark.parametrize("service", GATEWAY_AND_BROKER_CLIENTS)
def test_task_runners_wait_for_gateway_and_broker(services: dict[str, Any], service: str):
    depends = _dependencies(services, service)
    assert depends["gateway"] == "service_healthy"
    assert depends["rabbitmq"] == "service_healthy"


def test_every_dependency_with_service_healthy_has_a_healthcheck(services: dict[str, Any]):
    for spec in services.values():
        for name, dep in spec.get("depends_on", {}).items():
            assert name in services
            if dep["condition"] == "service_healthy":
                assert services[name]["healthcheck"]["test"]


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("postgres", "pg_isready"),
        ("rabbitmq", "rabbitmq-diagnostics -q ping"),
        ("gateway", "http://localhost:8099/healthz"),
        ("airflow-apiserver", "http://localhost:8080/api/v2/monitor/health"),
        ("airflow-scheduler", "http://localhost:8974/health"),
        ("airflow-dag-processor", "--job-type DagProcessorJob"),
        ("airflow-triggerer", "--job-type TriggererJob"),
        ("airflow-worker", 'python -m tools.airflow_celery --ping "celery@$${HOSTNAME}"'),
        ("redis", "redis-cli ping"),
        *((service, "http://localhost:8110/readyz") for service in LONG_RUNNING_SEGUE_SERVICES),
    ],
)
def test_healthchecks(services: dict[str, Any], service: str, probe: str):
    test = services[service]["healthcheck"]["test"]
    assert test[0] in {"CMD", "CMD-SHELL"}
    assert probe in " ".join(test[1:])


# --- healthcheck one-liners, run for real --------------------------------------------------


class _StubHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the status set on its server."""

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _StubHandler)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _python_probe(services: dict[str, Any], service: str) -> str:
    test = services[service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return test[3]


@pytest.mark.parametrize(
    "service", ["gateway", "airflow-apiserver", "airflow-scheduler", "validation", "intake"]
)
@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)], ids=["200", "503"])
def test_python_healthcheck_follows_the_http_status(
    services: dict[str, Any],
    stub_server: http.server.HTTPServer,
    service: str,
    status: int,
    healthy: bool,
):
    stub_server.status = status  # type: ignore[attr-defined]
    code = re.sub(
        r"http://localhost:\d+",
        f"http://127.0.0.1:{stub_server.server_port}",
        _python_probe(services, service),
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert (result.returncode == 0) is healthy, result.stderr.decode()


# --- docker/ helper scripts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "script", [AIRFLOW_INIT_SCRIPT, POSTGRES_INIT_SCRIPT, GENERATE_ENV_SCRIPT], ids=lambda p: p.name
)
def test_scripts_are_executable_strict_bash(script: Path):
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_postgres_mounts_the_init_script(services: dict[str, Any]):
    assert (
        "./docker/postgres/init-databases.sh:/docker-entrypoint-initdb.d/10-init-databases.sh:ro"
        in services["postgres"]["volumes"]
    )
    assert services["postgres"]["environment"]["INIT_DATABASES"].split() == ["airflow", "segue"]
    assert make_url(SEGUE_ENV["SEGUE_DATABASE_URL"]).database == "segue"


def _database_owner(name: str) -> str | None:
    url = make_url(POSTGRES)
    with psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname="postgres",
    ) as connection:
        row = connection.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    return row[0] if row else None


def test_postgres_init_script_creates_the_databases_once():
    """Run on the local server with throwaway names: creates each, and a second run is a no-op."""
    url = make_url(POSTGRES)
    names = [f"segue_compose_{uuid.uuid4().hex[:8]}_{suffix}" for suffix in ("a", "b")]
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGPASSWORD": url.password or "",
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_DB": "postgres",
        "INIT_DATABASES": " ".join(names),
    }
    try:
        for _ in range(2):
            subprocess.run(
                ["bash", str(POSTGRES_INIT_SCRIPT)],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
        for name in names:
            assert _database_owner(name) == env["POSTGRES_USER"]
    finally:
        for name in names:
            drop_database(url.set(database=name).render_as_string(hide_password=False))


def _run_airflow_init(
    tmp_path: Path, migrate_exit: int
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run docker/airflow-init.sh with a stub `airflow` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "airflow-calls"
    stub = bin_dir / "airflow"
    stub.write_text(
        f'#!/usr/bin/env bash\necho "$*" >> {shlex.quote(str(calls))}\nexit {migrate_exit}\n'
    )
    stub.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    passwords = tmp_path / "auth" / "passwords.json"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW_ADMIN_PASSWORD": "s3cret",
    }
    result = subprocess.run(
        ["bash", str(AIRFLOW_INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert calls.read_text().splitlines() == ["db migrate"]
    return result, passwords


def test_airflow_init_migrates_then_writes_the_passwords(tmp_path: Path):
    result, passwords = _run_airflow_init(tmp_path, migrate_exit=0)
    assert result.returncode == 0, result.stderr
    assert json.loads(passwords.read_text()) == {"admin": "s3cret", "viewer": "s3cret"}


def test_airflow_init_fails_when_the_migration_fails(tmp_path: Path):
    result, passwords = _run_airflow_init(tmp_path, migrate_exit=3)
    assert result.returncode == 3
    assert not passwords.exists()


def test_airflow_init_service_runs_the_script_baked_into_the_image(services: dict[str, Any]):
    init = services["airflow-init"]
    assert init["command"] == ["bash", "/opt/airflow/docker/airflow-init.sh"]
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"]
    assert "COPY --chown=airflow:0 docker/airflow-init.sh /opt/airflow/docker/airflow-init.sh" in (
        dockerfile_instructions()
    )


# --- Dockerfile ----------------------------------------------------------------------------


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pinned_airflow() -> str:
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    return next(line.split("==")[1] for line in pins if line.startswith("apache-airflow=="))


def test_dockerfile_pins_the_airflow_base_image():
    froms = [line for line in dockerfile_instructions() if line.startswith("FROM ")]
    assert froms == [f"FROM apache/airflow:{AIRFLOW_VERSION}-python3.11"]
    assert _pinned_airflow() == AIRFLOW_VERSION


def test_dockerfile_python_satisfies_requires_python():
    """The image's Python is one pyproject accepts, and the one requirements.txt was locked on."""
    base = next(line for line in dockerfile_instructions() if line.startswith("FROM "))
    python = re.fullmatch(r"FROM \S+-python(\d+\.\d+)", base)
    assert python is not None
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(python[1]) in SpecifierSet(requires)
    assert python[1] == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_dockerfile_installs_requirements_as_airflow_user():
    instructions = dockerfile_instructions()
    copy_index = instructions.index(
        "COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt"
    )
    install = [
        index
        for index, line in enumerate(instructions)
        if line.startswith("RUN pip install") and "-r /opt/airflow/requirements.txt" in line
    ]
    assert len(install) == 1 and install[0] > copy_index
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in instructions[install[0]]
    assert "--no-cache-dir" in instructions[install[0]]
    users = [line for line in instructions[: install[0]] if line.startswith("USER ")]
    assert users and users[-1] == "USER airflow"
    assert not [line for line in instructions if line == "USER root"]


def test_dockerfile_installs_the_project_editable_where_compose_mounts_it(
    compose: dict[str, Any],
):
    """pyproject's package dirs are copied to, installed from and mounted on the same paths."""
    instructions = dockerfile_instructions()
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    assert package_dirs == {"segue": "src/segue", "include": "include", "tools": "tools"}
    copied = " ".join(line for line in instructions if line.startswith("COPY "))
    for source in (
        "pyproject.toml",
        "README.md",
        "src/",
        "tools/",
        "plugins/",
        "include/",
        "dags/",
    ):
        assert f" {source}" in copied
    for folder in ("src", "tools", "plugins", "include", "dags"):
        assert f"{folder}/ /opt/airflow/{folder}/" in copied
        assert f"./{folder}:/opt/airflow/{folder}" in compose["x-airflow-common"]["volumes"]
    editable = [line for line in instructions if "pip install" in line and " -e " in line]
    assert editable == ["RUN pip install --no-cache-dir --no-deps -e /opt/airflow"]
    assert instructions.index(editable[0]) > max(
        index for index, line in enumerate(instructions) if " dags/ " in line
    )


@pytest.mark.parametrize("entry", [".git", ".venv", ".airflow", "**/__pycache__", "test-artifacts"])
def test_dockerignore_excludes_local_state(entry: str):
    assert entry in DOCKERIGNORE.read_text().splitlines()


def test_dockerignore_keeps_what_the_dockerfile_copies():
    ignored = [
        line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")
    ]
    for needed in (
        "requirements.txt",
        "pyproject.toml",
        "README.md",
        "src",
        "tools",
        "plugins",
        "include",
        "dags",
        "docker",
    ):
        assert needed not in ignored


def test_unshared_copy_does_not_share_merged_mappings(compose: dict[str, Any]):
    """Guards the negative tests: breaking one service must leave its siblings intact."""
    independent = unshared(compose)
    independent["services"]["airflow-scheduler"]["depends_on"]["postgres"]["condition"] = "x"
    triggerer = independent["services"]["airflow-triggerer"]
    assert triggerer["depends_on"]["postgres"]["condition"] == "service_healthy"

"""``segue up`` / ``segue down``: the whole project on this machine, in the background.

Business store and Airflow metadata go to the local PostgreSQL when one answers (databases are
created if missing); otherwise SQLite files under ``.airflow/``, with a warning: SQLite's
locking breaks Airflow's scheduler and triggerer under load.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from include.payments.catalog import seed_catalog
from include.payments.database import COMPONENTS
from include.payments.rollout_plan import install_default_plan
from segue.migrations import migrated
from segue.settings import get_settings
from segue.store.engine import session_scope, shared_engine
from segue.store.postgres import ensure_database, postgres_reachable
from tools.airflow_celery import CeleryOptions
from tools.airflow_stack import PROJECT_ROOT, AirflowStack
from tools.broker import ensure_vhost, vhost_url
from tools.event_path import (
    broker_reachable,
    start_airflow_handover,
    start_event_path,
    stop_event_path,
)
from tools.gateway import start_detached_gateway, stop_detached_gateway
from tools.ports import unused_port

LOCAL_HOME = PROJECT_ROOT / ".airflow"
LOCAL_POSTGRES = os.environ.get(
    "SEGUE_LOCAL_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"
)
AIRFLOW_PORT = 8080
GATEWAY_PORT = 8099
GATEWAY_TOKEN_FILE = "gateway-admin-token"
DEMO_KEY_FILE = "intake-demo.key"
CELERY_VHOST = "segue-airflow-celery"


@dataclass(frozen=True)
class LocalDatabases:
    business_url: str
    airflow_url: str
    on_postgres: bool


def local_business_url(home: Path = LOCAL_HOME) -> str:
    """The business store ``segue up`` uses: ``SEGUE_DATABASE_URL`` if set, else the local
    PostgreSQL's ``segue`` database when one answers, else ``.airflow/segue.db``."""
    settings = get_settings()
    if "database_url" in settings.model_fields_set:
        return settings.database_url
    if postgres_reachable(f"{LOCAL_POSTGRES}/postgres"):
        return f"{LOCAL_POSTGRES}/segue"
    return f"sqlite:///{home / 'segue.db'}"


def choose_databases(home: Path = LOCAL_HOME) -> LocalDatabases:
    """PostgreSQL if reachable (creating the databases), else SQLite files with a warning."""
    settings = get_settings()
    explicit_business = "database_url" in settings.model_fields_set
    if postgres_reachable(f"{LOCAL_POSTGRES}/postgres"):
        business = settings.database_url if explicit_business else f"{LOCAL_POSTGRES}/segue"
        airflow = f"{LOCAL_POSTGRES}/segue_airflow"
        for url in {business, airflow}:
            if url.startswith("postgresql") and ensure_database(url):
                print(f"  created database {url.rsplit('/', 1)[1]}")
        return LocalDatabases(business, airflow, on_postgres=True)
    print(
        "WARNING: no PostgreSQL at 127.0.0.1:5432; falling back to SQLite for a quick look.\n"
        "         Airflow's scheduler and triggerer fail with 'database is locked' once a few\n"
        "         dozen runs are queued: start PostgreSQL for real use.",
        file=sys.stderr,
    )
    home.mkdir(parents=True, exist_ok=True)
    business = settings.database_url if explicit_business else f"sqlite:///{home / 'segue.db'}"
    return LocalDatabases(business, f"sqlite:///{home / 'airflow.db'}", on_postgres=False)


def init_business_store(url: str) -> None:
    """Upgrade the schema to head, seed the demo catalog and install the example rollout plan
    (idempotent: an unchanged plan is not stored again)."""
    engine = migrated(shared_engine(url), COMPONENTS, progress=lambda line: print(f"  {line}"))
    with session_scope(engine) as session:
        added = seed_catalog(session)
        plan = install_default_plan(session)
    print(f"  business store ready ({added} catalog items added)")
    print(f"  rollout plan {plan.name} v{plan.version} installed (start it on the Rollout page)")


def ensure_demo_client(url: str, home: Path = LOCAL_HOME) -> tuple[str, Path]:
    """The demo API client's name and the file holding its key (made on first use).

    The key is kept in ``.airflow/intake-demo.key`` (mode 0600) so every ``make run`` can show
    how to use it; when that file is gone or its key revoked, a new demo client is made.
    """
    from include.payments.database import payments_engine
    from include.services.api_clients import client_of_key, create_client

    engine = payments_engine(url)
    path = home / DEMO_KEY_FILE
    if path.exists():
        with session_scope(engine) as session:
            name = client_of_key(session, path.read_text().strip())
        if name is not None:
            return name, path
    name = f"demo-{secrets.token_hex(4)}"
    with session_scope(engine) as session:
        key = create_client(session, name)
    write_secret(path, key)
    return name, path


def write_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


def gateway_env(home: Path) -> dict[str, str]:
    """The gateway's environment: ours, and where it writes the admin token it generates
    (unless ``SEGUE_GATEWAY_ADMIN_TOKEN`` names one)."""
    env = dict(os.environ)
    env.setdefault("SEGUE_GATEWAY_ADMIN_TOKEN_FILE", str(home / GATEWAY_TOKEN_FILE))
    return env


def celery_options() -> CeleryOptions:
    """``segue up --executor celery``: Celery's broker is the local RabbitMQ, on a vhost of its
    own (made once with ``rabbitmqctl``), so Airflow's task messages stay apart from events."""
    ensure_vhost(CELERY_VHOST)
    return CeleryOptions(broker_url=vhost_url(CELERY_VHOST), log_server_port=unused_port())


def up(home: Path = LOCAL_HOME, executor: str = "local") -> int:
    """Start the whole project in the background; see the module docstring.

    :param home: where state, logs and pid files go (``.airflow/``).
    :param executor: Airflow's executor, ``local`` or ``celery``.
    """
    print(f"Segue: starting the local stack (Airflow on the {executor} executor)")
    databases = choose_databases(home)
    init_business_store(databases.business_url)
    gateway_url = start_detached_gateway(home, GATEWAY_PORT, env=gateway_env(home))
    print(f"  gateway up at {gateway_url}")
    amqp_url = get_settings().amqp_url
    intake_url = None
    if broker_reachable(amqp_url):
        print("  starting the event-path services (RabbitMQ answers)")
        intake_url = start_event_path(
            home, database_url=databases.business_url, amqp_url=amqp_url, gateway_url=gateway_url
        )
    else:
        print(f"WARNING: no RabbitMQ at {amqp_url}; the event path stays off.", file=sys.stderr)
    stack = AirflowStack(
        home=home,
        metadata_url=databases.airflow_url,
        port=AIRFLOW_PORT,
        extra_env={"SEGUE_DATABASE_URL": databases.business_url, "SEGUE_GATEWAY_URL": gateway_url},
        executor=executor,
        celery=celery_options() if executor == "celery" else None,
    )
    print(f"  starting Airflow (log: {stack.log_path}); the first start migrates its database")
    stack.start()
    stack.wait_ready(progress=True)
    api = stack.api()
    api.wait_for_dag("payment_pipeline")
    if intake_url:
        print("  starting the hand-over of DAG-bound orders to Airflow (airflow-handover)")
        start_airflow_handover(
            home,
            database_url=databases.business_url,
            amqp_url=amqp_url,
            gateway_url=gateway_url,
            airflow_url=stack.url,
            username="admin",
            password=stack.admin_password(),
        )
    client, key_file = ensure_demo_client(databases.business_url, home)
    print(
        "\nSegue is up.\n"
        f"  Airflow UI:  {stack.url}\n"
        f"  Login:       admin / {stack.admin_password()}"
        f"  (read-only: viewer / {stack.password_of('viewer')})\n"
        f"  DAG:         {stack.url}/dags/payment_pipeline  (Trigger -> fill the order form)\n"
        f"  Gateway:     {gateway_url}  (faults: PUT {gateway_url}/admin/faults with\n"
        f'               -H "Authorization: Bearer {_gateway_token_hint(home)}")\n'
        f"  Business DB: {databases.business_url}\n"
        + (
            f"  Event path:  POST {intake_url}/orders  (see README: the event path)\n"
            f"  Intake key:  client {client!r}, key in {_shown(key_file)}; use it as\n"
            f'               curl -H "Authorization: Bearer $(cat {_shown(key_file)})" '
            f"{intake_url}/orders/ord-demo-1\n"
            if intake_url
            else ""
        )
        + "  Stop with:   make stop\n"
    )
    return 0


def _shown(path: Path) -> str:
    """``path`` relative to the project when it is inside it (shorter to paste)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _gateway_token_hint(home: Path) -> str:
    if "SEGUE_GATEWAY_ADMIN_TOKEN" in os.environ:
        return "$SEGUE_GATEWAY_ADMIN_TOKEN"
    return f"$(cat {_shown(Path(gateway_env(home)['SEGUE_GATEWAY_ADMIN_TOKEN_FILE']))})"


def down(home: Path = LOCAL_HOME) -> int:
    stopped_airflow = AirflowStack(home=home, metadata_url="").stop()
    stopped_gateway = stop_detached_gateway(home)
    stopped_services = stop_event_path(home)
    print(
        f"Airflow {'stopped' if stopped_airflow else 'was not running'}; "
        f"gateway {'stopped' if stopped_gateway else 'was not running'}; "
        f"event-path services stopped: {', '.join(stopped_services) or 'none'}."
    )
    return 0

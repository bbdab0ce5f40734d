"""A local Airflow 3 (``airflow standalone``: scheduler, dag-processor, triggerer, api-server).

Used by ``segue up`` for a developer's instance and by the end-to-end tests for a throwaway one,
so both run Airflow the same way: this project's dags/ and plugins/, LocalExecutor, metadata
on PostgreSQL (or SQLite as a fallback for a quick look). With ``executor="celery"`` the same
components plus an ``airflow celery worker`` run under ``tools.airflow_celery`` instead.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx

from include.workflow import workflow_env
from segue.settings import get_settings
from tools.airflow_api import AirflowApi
from tools.airflow_celery import CeleryOptions, celery_env, supervisor_command, worker_ready
from tools.processes import local_http, read_pid, spawn_detached, stop_detached

PROJECT_ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
# The simple auth manager's users (name:role): an admin, and a viewer who may read but not act.
ADMIN_USER = "admin"
VIEWER_USER = "viewer"
AUTH_USERS = f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer"


def amqp_conn_uri(amqp_url: str) -> str:
    """``AIRFLOW_CONN_SEGUE_AMQP`` for a Kombu URL: the vhost becomes the connection's schema."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"amqp://{parts.netloc}/{quote(vhost, safe='')}"


def local_fernet_keys(metadata_url: str, home: Path) -> str:
    """``AIRFLOW__CORE__FERNET_KEY`` for a local stack: a key derived from the metadata database,
    then the key ``airflow standalone`` generated in ``home`` earlier, if any.

    Airflow encrypts trigger kwargs (the AssetWatcher's trigger lives in the database for good)
    with this key. A key generated per ``AIRFLOW_HOME`` would be lost with ``.airflow/`` or in
    another checkout while the database stays, and the triggerer then dies on InvalidToken.
    Local development only: a real deployment sets its own secret key.
    """
    digest = hashlib.sha256(f"segue-local-fernet:{metadata_url}".encode()).digest()
    keys = [base64.urlsafe_b64encode(digest).decode()]
    config = configparser.ConfigParser(interpolation=None)
    config.read(home / "airflow.cfg")
    generated = config.get("core", "fernet_key", fallback="").strip()
    if generated and generated not in keys:
        keys.append(generated)  # still decrypts what was written with it
    return ",".join(keys)


def _attempt_order(log_file: Path) -> tuple[int, str]:
    """Sort key of a task's log files: the try number, then the try's own file first."""
    match = re.match(r"attempt=(\d+)\.log(.*)$", log_file.name)
    return (int(match.group(1)), match.group(2)) if match else (0, log_file.name)


class AirflowStartError(RuntimeError):
    """Airflow did not come up; the message carries the tail of its log."""


@dataclass
class AirflowStack:
    home: Path
    metadata_url: str
    port: int = 8080
    project_root: Path = PROJECT_ROOT
    extra_env: dict[str, str] = field(default_factory=dict)
    dag_refresh_seconds: int = 30
    # "local" (``airflow standalone``, LocalExecutor) or "celery" (tools.airflow_celery: the same
    # components plus ``airflow celery worker``, tasks sent through ``celery.broker_url``).
    executor: str = "local"
    celery: CeleryOptions | None = None

    def __post_init__(self) -> None:
        if self.executor not in ("local", "celery"):
            raise ValueError(f"executor must be 'local' or 'celery', not {self.executor!r}")
        if self.executor == "celery" and self.celery is None:
            raise ValueError("executor='celery' needs celery=CeleryOptions(broker_url=...)")

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "standalone.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "standalone.pid"

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def env(self) -> dict[str, str]:
        """The environment of every Airflow process (and so of every task it runs)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        # standalone runs its components as `airflow ...` found on PATH: this venv's first.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project_root / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project_root / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(self.dag_refresh_seconds),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": AUTH_USERS,
                "AIRFLOW__CORE__FERNET_KEY": local_fernet_keys(self.metadata_url, self.home),
            }
        )
        if self.metadata_url.startswith("postgresql+psycopg://"):
            # Airflow would derive an asyncpg URL; psycopg 3 has an async driver of its own.
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = self.metadata_url.replace(
                "postgresql+psycopg://", "postgresql+psycopg_async://", 1
            )
        env.update(workflow_env())
        # The bridge's Airflow connection (segue_amqp) points at the event path's broker.
        amqp_url = self.extra_env.get("SEGUE_AMQP_URL") or env.get("SEGUE_AMQP_URL")
        env["AIRFLOW_CONN_SEGUE_AMQP"] = amqp_conn_uri(amqp_url or get_settings().amqp_url)
        if self.celery is not None and self.executor == "celery":
            env.update(celery_env(self.celery, self.metadata_url))
        env.update(self.extra_env)
        return env

    def airflow_command(self) -> list[str]:
        if self.celery is not None and self.executor == "celery":
            return supervisor_command(self.celery)
        return [str(Path(sys.executable).with_name("airflow")), "standalone"]

    def start(self) -> int:
        """Start ``airflow standalone`` in the background (stopping a previous one first)."""
        self.stop()
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        return spawn_detached(
            self.airflow_command(),
            env=self.env(),
            log_path=self.log_path,
            pid_path=self.pid_path,
            cwd=self.project_root,
        )

    def stop(self) -> bool:
        return stop_detached(self.pid_path)

    def running(self) -> bool:
        return read_pid(self.pid_path) is not None

    def password_of(self, user: str) -> str:
        """The generated password of ``user`` (one of AUTH_USERS)."""
        return str(json.loads(self.password_file.read_text())[user])

    def admin_password(self) -> str:
        return self.password_of(ADMIN_USER)

    def api(self, user: str = ADMIN_USER) -> AirflowApi:
        """The REST client, logged in as ``user`` (default the admin)."""
        return AirflowApi(self.url, user, self.password_of(user))

    def wait_ready(self, timeout: float = 300.0, progress: bool = False) -> None:
        """Wait until every component reports healthy; raise with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.running():
                raise AirflowStartError(f"airflow standalone exited:\n{self.log_tail()}")
            status = self._health()
            healthy = status and all(status.get(c) == "healthy" for c in COMPONENTS)
            if healthy and self._users_have_passwords() and self._worker_ready():
                return
            summary = ", ".join(f"{c}={status.get(c, '?')}" for c in COMPONENTS)
            if progress and summary != last:
                print(f"  waiting for Airflow: {summary}", flush=True)
                last = summary
            time.sleep(2.0)
        raise AirflowStartError(f"Airflow not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def _worker_ready(self) -> bool:
        """The Celery worker consumes its queue (always true on LocalExecutor)."""
        if self.executor != "celery":
            return True
        try:
            return worker_ready(self.log_path.read_text(errors="replace"))
        except OSError:
            return False

    def _users_have_passwords(self) -> bool:
        try:
            passwords = json.loads(self.password_file.read_text())
        except (OSError, ValueError):
            return False
        return all(user.split(":")[0] in passwords for user in AUTH_USERS.split(","))

    def _health(self) -> dict[str, str]:
        try:
            data = local_http().get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return {name: (part or {}).get("status", "?") for name, part in data.items()}

    def task_log_files(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every try's log file of one task, read from disk, first try first.

        The files outlive Airflow's records of a try: a try failed by the scheduler's
        "state mismatch" race (apache/airflow#72716) may have no task-instance record left for
        the REST log endpoint to find, but its log file is still here.

        :param dag_id: the DAG.
        :param run_id: the DAG run.
        :param task_id: the task.
        """
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        # attempt=1.log, then the triggerer's attempt=1.log.trigger.2.log of that try, ...
        files = sorted(folder.glob("attempt=*.log"), key=_attempt_order)
        return "\n".join(f.read_text(errors="replace") for f in files)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

"""Airflow on the CeleryExecutor for ``AirflowStack(executor="celery")``: its settings, and a
small supervisor that runs Airflow's components plus ``airflow celery worker``.

``airflow standalone`` forces LocalExecutor for any executor that is not local, so a Celery stack
cannot use it. ``python -m tools.airflow_celery`` does what standalone does for us instead:
migrate the metadata database, then run the scheduler, dag-processor, api-server, triggerer and
one Celery worker as child processes in its own process group, every line of their output
prefixed with the component's name (as standalone does) on its own output. When one component
exits, the others are stopped and the supervisor exits with that code, so
``AirflowStack.running()`` sees a broken stack; SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

CELERY_EXECUTOR = "CeleryExecutor"
WORKER = "celery-worker"
# What Celery logs when the worker consumes its queues: "celery@<name> ready."
READY_MARK = " ready."
STOP_GRACE_SECONDS = 15.0
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
COMPAT = [sys.executable, "-m", "tools.celery_compat"]


@dataclass(frozen=True)
class CeleryOptions:
    """How a Celery stack reaches its broker and which queue its worker serves.

    :param broker_url: Celery's broker, e.g. ``amqp://guest:guest@127.0.0.1:5672/celery-e2e``
        (a RabbitMQ vhost of its own) or ``redis://127.0.0.1:6379/0``.
    :param queue: the queue tasks go to (``[operators] default_queue``) and the worker serves;
        a unique one keeps this stack's tasks from any other worker on the same broker.
    :param worker_name: the worker's Celery node name (``name@host``).
    :param concurrency: task processes of the worker.
    :param log_server_port: the worker's task-log server (``[logging] worker_log_server_port``);
        pick a free one where several stacks share a machine.
    :param operation_timeout: seconds the scheduler may take to publish a task
        (``[celery] operation_timeout``, 1 s by default: too short on a loaded machine).
    """

    broker_url: str
    queue: str = "default"
    worker_name: str = "segue-worker@%h"
    concurrency: int = 4
    log_server_port: int = 8793
    operation_timeout: float = 30.0


def result_backend_url(metadata_url: str) -> str:
    """Celery's result backend on the metadata database (``db+`` + its SQLAlchemy URL).

    :param metadata_url: Airflow's ``sql_alchemy_conn``.
    """
    return f"db+{metadata_url}"


def celery_env(options: CeleryOptions, metadata_url: str) -> dict[str, str]:
    """The ``AIRFLOW__*`` variables that put a stack on the CeleryExecutor.

    :param options: broker, queue and worker.
    :param metadata_url: Airflow's metadata database, also Celery's result backend.
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": CELERY_EXECUTOR,
        "AIRFLOW__CELERY__BROKER_URL": options.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend_url(metadata_url),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(options.concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": options.queue,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(options.log_server_port),
        # The scheduler's publish of a task to the broker runs under a SIGALRM timeout (1 s by
        # default). On a busy machine it fires mid-publish; with RabbitMQ the interrupted AMQP
        # channel then waits forever for its close-ok and the scheduler hangs (seen here at
        # load average 40). Give the publish time instead.
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": str(options.operation_timeout),
    }


def supervisor_command(options: CeleryOptions) -> list[str]:
    """The command that runs a Celery stack (this module, with this interpreter).

    :param options: the worker's name (the rest reaches it through the environment).
    """
    return [sys.executable, "-m", "tools.airflow_celery", "--worker-name", options.worker_name]


def worker_ready(log_text: str) -> bool:
    """True when the supervisor's log shows the Celery worker consuming its queues.

    :param log_text: the supervisor's output so far.
    """
    prefix = f"{WORKER:14} |"
    return any(
        line.startswith(prefix) and READY_MARK in line and "@" in line
        for line in log_text.splitlines()
    )


def components(worker_name: str) -> dict[str, list[str]]:
    """Each component's command, in start order: the two that load the Celery provider's
    executor code go through ``tools.celery_compat`` (fixes for the pinned versions).

    :param worker_name: the Celery worker's node name.
    """
    return {
        "api-server": [AIRFLOW, "api-server"],
        "dag-processor": [AIRFLOW, "dag-processor"],
        "triggerer": [AIRFLOW, "triggerer"],
        "scheduler": [*COMPAT, "scheduler"],
        WORKER: [*COMPAT, "celery", "worker", "--celery-hostname", worker_name],
    }


class Supervisor:
    """Runs the components and relays their output; see the module docstring."""

    def __init__(self, commands: dict[str, list[str]], out: IO[str]) -> None:
        self.commands = commands
        self.out = out
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def say(self, name: str, line: str) -> None:
        """Write ``line`` to the output, prefixed with ``name`` (one writer at a time).

        :param name: the component (or ``supervisor``).
        :param line: one line of its output.
        """
        with self._lock:
            self.out.write(f"{name:14} | {line}\n")
            self.out.flush()

    def _relay(self, name: str, stream: IO[bytes]) -> None:
        for raw in stream:
            self.say(name, raw.decode("utf8", errors="replace").rstrip())

    def run_once(self, name: str, args: Sequence[str]) -> int:
        """Run ``args`` to its end (``airflow db migrate``), relaying its output; its exit code.

        :param name: the prefix of its output lines.
        :param args: the command.
        """
        process = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        self._relay(name, process.stdout)
        return process.wait()

    def start(self, names: Sequence[str]) -> None:
        """Start the named components, each with a thread relaying its output.

        :param names: keys of the commands given to the supervisor.
        """
        for name in names:
            args = self.commands[name]
            process = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.children[name] = process
            assert process.stdout is not None
            threading.Thread(target=self._relay, args=(name, process.stdout), daemon=True).start()

    def watch(self) -> int:
        """Wait until a component exits or a stop is asked; the exit code."""
        while not self._stopping:
            for name, process in self.children.items():
                code = process.poll()
                if code is not None:
                    self.say("supervisor", f"{name} exited with code {code}; stopping the rest")
                    self.stop()
                    return code or 1
            time.sleep(0.5)
        return 0

    def stop(self, *_: object) -> None:
        """Stop every component: SIGTERM, then SIGKILL after a grace period."""
        self._stopping = True
        for process in self.children.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in self.children.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ping(node: str, timeout: float = 10.0) -> bool:
    """True when the Celery worker ``node`` (``name@host``) answers a ping over the broker
    configured in this process's ``AIRFLOW__CELERY__*`` (a worker's healthcheck).

    :param node: the worker's node name, e.g. ``celery@$HOSTNAME``.
    :param timeout: seconds to wait for its answer.
    """
    from tools.celery_compat import patch_celery

    patch_celery()
    from airflow.providers.celery.executors.celery_executor import app

    replies = app.control.ping(destination=[node], timeout=timeout) or []
    return any(node in reply for reply in replies)


def main(argv: Sequence[str] | None = None) -> int:
    """Migrate the metadata database, then run the components until one exits or a signal;
    with ``--ping NODE``, only check that worker ``NODE`` answers (exit 0) or not (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-name", default="segue-worker@%h")
    parser.add_argument("--ping", metavar="NODE", help="ping a Celery worker and exit")
    args = parser.parse_args(argv)
    if args.ping:
        return 0 if ping(args.ping) else 1
    supervisor = Supervisor(components(args.worker_name), sys.stdout)
    supervisor.say("supervisor", f"executor {os.environ.get('AIRFLOW__CORE__EXECUTOR')}")
    code = supervisor.run_once("db-migrate", [AIRFLOW, "db", "migrate"])
    if code != 0:
        supervisor.say("supervisor", f"airflow db migrate failed with code {code}")
        return code

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.say("supervisor", f"signal {signum}: stopping the components")
        supervisor.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # All at once, as standalone does. A task a worker starts before the api-server answers
    # fails (its execution API is down); the scheduler retries or fails it like any other.
    supervisor.start(list(supervisor.commands))
    return supervisor.watch()


if __name__ == "__main__":
    sys.exit(main())

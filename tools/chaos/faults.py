"""The faults: kill a DAG task's process, kill a service, drop the broker connections.

Each one acts on a :class:`tools.chaos.stack.Stack` and returns what it did in a sentence; one
that cannot act on this stack (no process of it on this host, nothing running to kill) raises
:class:`NotApplicable` with the reason, so a report never claims a fault that did not happen.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psutil
from sqlalchemy import select

from include.payments.routing import (
    BATCH_DAG_OF_PATH,
    DAG_OF_PATH,
    BatchOrderRow,
    OrderRouteRow,
    dag_run_id_for,
)
from segue.store.engine import session_scope, shared_engine
from tools.airflow_api import AirflowApi
from tools.broker import rabbitmqctl
from tools.chaos.stack import Stack

SERVICE_DOWN_SECONDS = 2.0
AMQP_PORT = 5672


class NotApplicable(RuntimeError):
    """The fault cannot be injected into this stack (the reason is the message)."""


def task_process(ti_id: str) -> psutil.Process | None:
    """The task runner of one try: Airflow titles it ``airflow worker -- <ti id>``.

    :param ti_id: the task instance's id (``id`` in the REST API).
    """
    for process in psutil.process_iter(["cmdline"]):
        if f"airflow worker -- {ti_id}" in " ".join(process.info["cmdline"] or ()):
            return process
    return None


def runs_of_orders(stack: Stack, order_ids: Iterable[str]) -> dict[str, set[str]]:
    """The DAG runs that carry these orders so far, by DAG id.

    An order goes to its path's per-order DAG (one run named after it) or, with the front
    door's batching on, to the path's batched DAG, whose runs its queue row names once they
    claimed it (``claimed_by``, ``runs``); ``order_routes.dag_id`` says which.

    :param stack: the stack (its business store).
    :param order_ids: the orders.
    """
    ids = list(order_ids)
    runs: dict[str, set[str]] = {}
    with session_scope(shared_engine(stack.database_url)) as session:
        routes = session.execute(
            select(OrderRouteRow.order_id, OrderRouteRow.dag_id).where(
                OrderRouteRow.order_id.in_(ids)
            )
        ).all()
        queued = session.execute(
            select(BatchOrderRow.dag_id, BatchOrderRow.claimed_by, BatchOrderRow.runs).where(
                BatchOrderRow.order_id.in_(ids)
            )
        ).all()
    for order_id, dag_id in routes:
        if dag_id is not None:
            runs.setdefault(dag_id, set()).add(dag_run_id_for(order_id))
    for dag_id, claimed_by, named in queued:
        runs.setdefault(dag_id, set()).update({claimed_by, *named.split()} - {None})
    return runs


def kill_task(stack: Stack, path: str, order_ids: Iterable[str], timeout: float = 120.0) -> str:
    """SIGKILL the process of the first running task of one of the orders' DAG runs (the
    path's per-order DAG, or its batched DAG when the front door batches).

    :param stack: the stack (Airflow must run on this host).
    :param path: ``dag``, ``saga`` or ``hybrid``.
    :param order_ids: the orders whose runs may be hit.
    :param timeout: seconds to wait for a running task.
    """
    if stack.airflow_url is None or stack.airflow_password is None:
        raise NotApplicable("no Airflow login for this stack")
    order_ids = list(order_ids)
    api = AirflowApi(stack.airflow_url, stack.airflow_user, stack.airflow_password)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for dag_id, runs in runs_of_orders(stack, order_ids).items():
                page = api.get(f"/dags/{dag_id}/dagRuns/~/taskInstances", state=["running"])
                for ti in page["task_instances"]:
                    process = task_process(ti["id"]) if ti["dag_run_id"] in runs else None
                    if process is not None:
                        os.kill(process.pid, signal.SIGKILL)
                        return (
                            f"SIGKILLed the process of task {ti['task_id']} (try "
                            f"{ti['try_number']}) of {dag_id} run {ti['dag_run_id']}"
                        )
            time.sleep(0.2)
    finally:
        api.close()
    dags = " or ".join(sorted({DAG_OF_PATH[path], BATCH_DAG_OF_PATH.get(path, DAG_OF_PATH[path])}))
    raise NotApplicable(f"no running task of {dags} found on this host within {timeout:.0f} s")


def kill_service(stack: Stack, name: str, down_seconds: float = SERVICE_DOWN_SECONDS) -> str:
    """SIGKILL a service, leave it down ``down_seconds``, start it again.

    :param stack: the stack (the service must run on this host).
    :param name: the service's name (``charge``, ``inventory``, ...).
    :param down_seconds: how long work piles up while it is down.
    """
    service = stack.services.get(name)
    if service is None:
        raise NotApplicable(f"no process of service {name!r} of this stack on this host")
    pid = service.pid
    service.kill()
    time.sleep(down_seconds)
    service.restart()
    return f"SIGKILLed service {name} (pid {pid}), restarted it {down_seconds:.0f} s later"


def drop_broker_connections(stack: Stack) -> str:
    """Close, broker side, every AMQP connection of the stack's service processes.

    The connections are found by their client ports (the processes' sockets to port 5672), so
    only this stack's connections drop, not those of others sharing the broker.

    :param stack: the stack (its services must run on this host).
    """
    ports = set()
    for service in stack.services.values():
        try:
            sockets = psutil.Process(service.pid).net_connections(kind="tcp")
        except (psutil.Error, RuntimeError):
            continue
        ports |= {s.laddr.port for s in sockets if s.raddr and s.raddr.port == AMQP_PORT}
    if not ports:
        raise NotApplicable("no broker connection of this stack's services found on this host")
    closed = 0
    for line in rabbitmqctl(
        "list_connections", "pid", "peer_port", "--no-table-headers"
    ).splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit() and int(fields[1]) in ports:
            rabbitmqctl("close_connection", fields[0], "segue chaos: broker connection dropped")
            closed += 1
    if not closed:
        raise NotApplicable("the broker lists none of this stack's connections")
    return f"closed {closed} broker connections of {len(stack.services)} service processes"


@dataclass(frozen=True)
class Fault:
    """One fault of a path's phase.

    :param name: short name (``kill-task``, ``kill-service``, ``drop-broker``).
    :param what: a sentence for the report.
    :param inject: does it; returns what it did (``stack``, the orders in the phase).
    """

    name: str
    what: str
    inject: Callable[[Stack, list[str]], str]


FAULTS: dict[str, Fault] = {
    "dag": Fault(
        "kill-task",
        "SIGKILL of a running task process of payment_pipeline (Airflow retries the try)",
        lambda stack, ids: kill_task(stack, "dag", ids),
    ),
    "saga": Fault(
        "kill-task",
        "SIGKILL of the running saga task of payment_state_machine (resumes from saved state)",
        lambda stack, ids: kill_task(stack, "saga", ids),
    ),
    "hybrid": Fault(
        "kill-service",
        "SIGKILL of the charge service payment_hybrid delegates to, restarted 2 s later",
        lambda stack, ids: kill_service(stack, "charge"),
    ),
    "events": Fault(
        "drop-broker",
        "RabbitMQ closes every connection of the event-path services (they reconnect)",
        lambda stack, ids: drop_broker_connections(stack),
    ),
}

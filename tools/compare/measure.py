"""What ``segue compare`` measures besides the orders: CPU of the stack's processes, per order
latency from the business store, and whether each order has one timeline (and one trace).

CPU: every process of the stack on this host (the services, the gateway, ``airflow
standalone`` and every process under it, task runners included) is sampled every 0.5 s with
psutil; a process's CPU is its user + system time at its last sample. A process that lives
less than a sample is missed and one's last half second is not counted: the DAG paths' task
runners are under-counted by up to that much each. PostgreSQL and RabbitMQ are shared with
other users of this machine and not counted.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime

import psutil
from sqlalchemy import Engine, select

from include.payments.tables import OrderRow
from segue.rollout.tables import RouteDecisionRow
from segue.store.engine import session_scope

SAMPLE_SECONDS = 0.5
# The processes an order of each path passes through (the front door, its relay's event log and
# the gateway on every path); the CPU per order of a path counts these only.
SHARED = {"intake", "event-log", "gateway"}
AIRFLOW_SIDE = {"airflow-handover", "airflow"}
PATH_PROCESSES: dict[str, set[str]] = {
    "dag": SHARED | AIRFLOW_SIDE,
    "saga": SHARED | AIRFLOW_SIDE,
    "hybrid": SHARED | AIRFLOW_SIDE | {"charge", "saga-replies"},
    "events": SHARED | {"validation", "inventory", "charge", "receipt", "shipping"},
}
AIRFLOW_ROLES = ("scheduler", "triggerer", "api-server", "dag-processor", "worker", "executor")


def airflow_role(cmdline: Sequence[str]) -> str:
    """A process under ``airflow standalone`` named by its role (``airflow task`` for runners).

    :param cmdline: its command line.
    """
    text = " ".join(cmdline).replace("api_server", "api-server")  # its workers' title
    if "airflow worker --" in text or "task" in text.split()[:3]:
        return "airflow task runners"
    role = next((r for r in AIRFLOW_ROLES if r in text), "other")
    return f"airflow {role}"


class CpuSampler:
    """Samples the CPU time of the stack's processes in a thread until stopped.

    :param roots: group name -> pid of each root process (its descendants are included; under
        Airflow they are grouped by role).
    """

    def __init__(self, roots: Mapping[str, int]) -> None:
        self._roots = dict(roots)
        self._seen: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def snapshot(self) -> dict[int, tuple[str, float]]:
        """pid -> (group, CPU seconds at its last sample), sampled now first."""
        self._sample()
        with self._lock:
            return dict(self._seen)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        found: dict[int, tuple[str, float]] = {}
        for name, pid in self._roots.items():
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in tree:
                try:
                    times = process.cpu_times()
                    group = (
                        airflow_role(process.cmdline())
                        if name == "airflow" and process is not root
                        else name
                    )
                except psutil.Error:
                    continue
                found[process.pid] = (group, times.user + times.system)
        with self._lock:
            self._seen.update(found)


def cpu_between(
    before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each group used from one snapshot to the next.

    :param before: the earlier :meth:`CpuSampler.snapshot`.
    :param after: the later one.
    """
    groups: dict[str, float] = {}
    for pid, (group, seconds) in after.items():
        used = seconds - before.get(pid, (group, 0.0))[1]
        groups[group] = groups.get(group, 0.0) + max(0.0, used)
    return groups


def on_path(groups: Mapping[str, float], path: str) -> dict[str, float]:
    """The CPU seconds of the process groups ``path`` uses (Airflow's roles count as Airflow).

    :param groups: CPU seconds by group (:func:`cpu_between`).
    :param path: the path.
    """
    wanted = PATH_PROCESSES[path]
    return {g: s for g, s in groups.items() if g in wanted or g.split(" ")[0] in wanted}


def order_times(
    engine: Engine, order_ids: Sequence[str]
) -> dict[str, tuple[datetime, datetime | None, str | None]]:
    """Per order: its route decision's time, the time of its terminal status (None while not
    terminal) and the status.

    :param engine: the business store.
    :param order_ids: the orders.
    """
    query = (
        select(
            RouteDecisionRow.subject_id,
            RouteDecisionRow.decided_at,
            OrderRow.updated_at,
            OrderRow.status,
        )
        .outerjoin(OrderRow, OrderRow.order_id == RouteDecisionRow.subject_id)
        .where(RouteDecisionRow.subject_id.in_(order_ids))
    )
    with session_scope(engine) as session:
        rows = session.execute(query).all()
    return {
        order_id: (decided, ended if status in ("completed", "failed") else None, status)
        for order_id, decided, ended, status in rows
    }


def tracing_module() -> str | None:
    """The code base's tracing module, if it has one (``segue.tracing``)."""
    return "segue.tracing" if importlib.util.find_spec("segue.tracing") is not None else None

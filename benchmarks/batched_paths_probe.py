"""What ``batched_paths.py`` measures besides latency: the RSS of Airflow's processes while a
phase runs, where a batch run's time goes (Airflow's part per run, the domain's per order), and
the domain steps alone over one batch in this process (no Airflow at all)."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psutil

from include.payments import batch_queue, batch_steps
from include.payments.deps import PaymentDeps
from include.payments.order_form import conf_for
from include.payments.settings import PaymentSettings
from segue.store.engine import session_scope
from tools.airflow_api import AirflowApi

ROLES = ("scheduler", "triggerer", "dag-processor", "api-server")


def role_of(process: psutil.Process) -> str | None:
    """Which part of Airflow a process is: a named service, a worker, or a task's process."""
    try:
        cmdline = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "LocalExecutor" in cmdline or "celery" in cmdline:
        return "worker"
    if "airflow" not in cmdline and "task" not in cmdline:
        return None
    for role in ROLES:
        if f"airflow {role}" in cmdline:
            return role
    return "task" if "task" in cmdline or "supervise" in cmdline else None


class RssSampler:
    """Samples, once a second, the RSS of every process under ``root_pid`` by role (summed);
    ``peaks()`` is the highest total per role seen."""

    def __init__(self, root_pid: int) -> None:
        """:param root_pid: the ``airflow standalone`` process."""
        self.root = psutil.Process(root_pid)
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            totals: dict[str, float] = {}
            for process in self.root.children(recursive=True):
                role = role_of(process)
                if role is None:
                    continue
                try:
                    rss = process.memory_info().rss / 2**20
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                totals[role] = totals.get(role, 0.0) + rss
            for role, mib in totals.items():
                self.peak[role] = max(self.peak.get(role, 0.0), mib)

    def peaks(self) -> dict[str, float]:
        """Peak MiB per role (summed over that role's processes at one moment)."""
        return {role: round(mib, 1) for role, mib in sorted(self.peak.items())}


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def run_breakdown(
    api: AirflowApi, dag_id: str, orders_per_run: dict[str, int], domain_s_per_order: float
) -> dict[str, Any]:
    """Where the batch runs' time went: queued → running, running → done, the task processes'
    time, and the part of a run's wall time that is not the domain's work on its orders.

    :param api: the sandbox's Airflow.
    :param dag_id: the batched DAG.
    :param orders_per_run: run id → orders it took (from ``batch_orders.runs``).
    :param domain_s_per_order: the domain steps' wall time per order, measured without Airflow.
    """
    waits, walls, task_sums, overheads, sizes = [], [], [], [], []
    for run_id, orders in orders_per_run.items():
        run = api.wait_for_run(dag_id, run_id, timeout=120)  # settled orders come before its end
        tis = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        wall = _seconds(run.get("start_date"), run.get("end_date"))
        wait = _seconds(run.get("queued_at"), run.get("start_date"))
        if wall is None:
            continue
        walls.append(wall)
        waits.append(wait or 0.0)
        task_sums.append(sum(ti.get("duration") or 0.0 for ti in tis))
        overheads.append(wall - orders * domain_s_per_order)
        sizes.append(orders)
    if not walls:
        return {"runs": 0}
    return {
        "runs": len(walls),
        "orders_per_run_mean": round(statistics.mean(sizes), 1),
        "orders_per_run_max": max(sizes),
        "run_queued_to_start_s_mean": round(statistics.mean(waits), 2),
        "run_wall_s_mean": round(statistics.mean(walls), 2),
        "task_seconds_per_run_mean": round(statistics.mean(task_sums), 2),
        "airflow_overhead_s_per_run_mean": round(statistics.mean(overheads), 2),
        "domain_s_per_order": round(domain_s_per_order, 4),
    }


def domain_probe(deps: PaymentDeps, orders: Sequence[Any], settings: PaymentSettings) -> float:
    """The five steps over one batch of ``orders`` in this process, as a batch task runs
    them (same code, same database, no Airflow): wall seconds per order.

    :param deps: the sandbox's business store and gateway.
    :param orders: validated orders (queued here under a DAG id no watcher watches).
    :param settings: threads per step, retries.
    """
    dag_id, run_id = "benchmark_domain_probe", f"probe-{uuid.uuid4().hex[:8]}"
    with session_scope(deps.engine) as session:
        for order in orders:
            batch_queue.enqueue(session, order.order_id, dag_id, conf_for(order))
    started = time.perf_counter()
    claimed = [c.order_id for c in batch_queue.claim(deps.engine, dag_id, run_id, len(orders), 60)]
    for step in batch_steps.STEPS:
        batch_steps.run_batch_step(
            deps, settings, workflow=dag_id, run_id=run_id, step=step, order_ids=claimed
        )
    batch_steps.finish(deps, run_id, claimed)
    return (time.perf_counter() - started) / max(len(orders), 1)

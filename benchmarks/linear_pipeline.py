"""Benchmark of the linear path: N orders triggered at once as N runs of payment_pipeline.

Starts its own sandbox (fresh PostgreSQL databases, the gateway with latency 0 and no faults,
a real `airflow standalone` with LocalExecutor), triggers the runs through the REST API v2,
waits for all of them, checks every order's effects in the business store, and prints and
writes (benchmarks/results/linear_pipeline.json) throughput and per-run latency. The article's
workload is the yardstick: 10,000 orders/hour (2.8/s) with spikes to 50,000 (13.9/s).

    .venv/bin/python benchmarks/linear_pipeline.py --orders 100
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

from include.payments.database import payments_engine
from include.payments.tables import ChargeRow, OrderRow
from segue.store.engine import session_scope
from tools.airflow_api import AirflowApi
from tools.sandbox import Sandbox, sandbox

RESULTS = Path(__file__).parent / "results" / "linear_pipeline.json"
ARTICLE_ORDERS_PER_SECOND = 10_000 / 3600
ARTICLE_SPIKE_PER_SECOND = 50_000 / 3600


def order(index: int) -> dict[str, object]:
    return {"order_id": f"bench-{uuid.uuid4().hex[:12]}-{index}", "amount": "10.00"}


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def finished_runs(api: AirflowApi) -> int:
    page = api.get("/dags/payment_pipeline/dagRuns", state=["success", "failed"], limit=1)
    return page["total_entries"]


def run(orders: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="segue-bench-") as home, sandbox(Path(home)) as box:
        return measure(box, orders)


def measure(box: Sandbox, orders: int) -> dict[str, object]:
    """Trigger ``orders`` runs of payment_pipeline at once on ``box``; the figures (also used by
    ``benchmarks/batched_paths.py`` as its per-order baseline in the same sandbox)."""
    api = box.airflow.api()
    api.wait_for_dag("payment_pipeline")
    print(f"Airflow up at {box.airflow.url}; triggering {orders} orders", flush=True)
    started = time.monotonic()
    done_before = finished_runs(api)
    confs = [order(i) for i in range(orders)]
    run_ids = [api.trigger_dag_run("payment_pipeline", conf) for conf in confs]
    triggered = time.monotonic() - started
    done = 0
    while done < orders:
        time.sleep(5)
        try:  # one cheap count per poll: the api-server is starved for CPU under this load
            done = finished_runs(api) - done_before
        except httpx.TimeoutException:
            continue
        print(f"  {done}/{orders} finished after {time.monotonic() - started:.0f}s", flush=True)
    wall = time.monotonic() - started
    finished = {run_id: api.dag_run("payment_pipeline", run_id) for run_id in run_ids}
    latencies = [seconds(r["queued_at"], r["end_date"]) for r in finished.values()]
    ids = [str(conf["order_id"]) for conf in confs]
    with session_scope(payments_engine(box.business_url)) as session:
        completed = session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(OrderRow.status == "completed", OrderRow.order_id.in_(ids))
        )
        charges = session.scalar(
            select(func.count()).select_from(ChargeRow).where(ChargeRow.order_id.in_(ids))
        )
    throughput = orders / wall
    return {
        "orders": orders,
        "succeeded_runs": sum(r["state"] == "success" for r in finished.values()),
        "orders_completed_in_db": completed,
        "charges_in_db": charges,
        "trigger_seconds": round(triggered, 2),
        "wall_seconds": round(wall, 1),
        "orders_per_second": round(throughput, 2),
        "run_latency_p50_s": round(statistics.median(latencies), 1),
        "run_latency_p95_s": round(percentile(latencies, 0.95), 1),
        "ratio_to_article_average_2_8_per_s": round(throughput / ARTICLE_ORDERS_PER_SECOND, 2),
        "ratio_to_article_spike_13_9_per_s": round(throughput / ARTICLE_SPIKE_PER_SECOND, 2),
        "measured_at": datetime.now().isoformat(timespec="seconds"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()
    result = run(args.orders)
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    ok = result["orders_completed_in_db"] == result["charges_in_db"] == args.orders
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

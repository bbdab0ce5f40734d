"""Benchmark of the batched paths: orders through the front door into payment_pipeline_batch
and payment_state_machine_batch at stepped rates, against per-order payment_pipeline measured
in the same sandbox (``linear_pipeline.measure``).

Starts its own sandbox (fresh databases, the gateway with latency 0 and no faults, a real
``airflow standalone`` on PostgreSQL with LocalExecutor). Orders are placed through the front
door's own function (``intake_http.place``: the traffic split pinned to the path, the route
decision, the placement, the batch queue row, in one transaction) from this process, paced open
loop at each rate for ``--seconds``, then drained. Per phase: orders/s sustained (orders ÷
first acceptance to last terminal), p50/p95 from acceptance to terminal (``batch_orders``:
``enqueued_at`` is the accepting transaction, ``finished_at`` the run's settling), every order
completed with exactly one charge (business store and gateway ledger), peak RSS of the
scheduler, workers, triggerer and task processes, and where a run's time goes.

    .venv/bin/python benchmarks/batched_paths.py --rates 2.8,14,50 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import linear_pipeline
from batched_paths_probe import RssSampler, domain_probe, run_breakdown
from sqlalchemy import func, select, update

from include.gateway.admin import stats as gateway_stats
from include.gateway.tokens import FIXED_TOKENS, card_brand
from include.payments.database import payments_engine
from include.payments.deps import PaymentDeps
from include.payments.gateway_client import GatewayClient
from include.payments.models import Order
from include.payments.routing import BATCH_DAG_OF_PATH, BatchOrderRow
from include.payments.settings import PaymentSettings
from include.payments.tables import ChargeRow, OrderRow, StockRow
from include.services.front_door import flag_router, route_everything_to
from include.services.intake_http import place
from segue.store.engine import session_scope
from tools.sandbox import Sandbox, sandbox

RESULTS = Path(__file__).parent / "results" / "batched_paths.json"
CARD = FIXED_TOKENS["pm_card_visa"]


def make_order(prefix: str, index: int) -> Order:
    """A valid one-item order with a good card (its token; last four and brand as the gateway
    tells them)."""
    return Order.model_validate(
        {
            "order_id": f"{prefix}-{uuid.uuid4().hex[:10]}-{index}",
            "customer_email": "bench@example.com",
            "payment_method": "pm_card_visa",
            "card_last4": CARD[-4:],
            "card_brand": card_brand(CARD),
            "amount": "10.00",
            "currency": "USD",
            "items": [{"sku": "SKU-MUG", "quantity": 1}],
            "shipping_address": {
                "name": "Bench",
                "line1": "1 Load St",
                "city": "London",
                "postal_code": "N1 1AA",
                "country": "GB",
            },
        }
    )


def feed(engine: Any, path: str, rate: float, seconds: float) -> tuple[list[str], float]:
    """Place ``rate * seconds`` orders on ``path``, paced open loop; (ids, achieved rate)."""
    router, ids = flag_router(), []
    total = max(1, round(rate * seconds))
    started = time.monotonic()
    for index in range(total):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        order = make_order(f"b{path}", index)
        place(engine, order, "benchmark", router, batch=True)
        ids.append(order.order_id)
    return ids, total / max(time.monotonic() - started, 1e-9)


def wait_settled(engine: Any, ids: list[str], timeout: float) -> list[BatchOrderRow]:
    """The queue rows of ``ids`` once all are settled (done or failed), or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(engine) as session:
            states = Counter(
                dict(
                    session.execute(
                        select(BatchOrderRow.state, func.count())
                        .where(BatchOrderRow.order_id.in_(ids))
                        .group_by(BatchOrderRow.state)
                    ).all()
                )
            )
        settled = states["done"] + states["failed"]
        if settled == len(ids) or time.monotonic() > deadline:
            with session_scope(engine) as session:
                rows = list(
                    session.scalars(select(BatchOrderRow).where(BatchOrderRow.order_id.in_(ids)))
                )
                session.expunge_all()
            return rows
        print(f"    {settled}/{len(ids)} settled {dict(states)}", flush=True)
        time.sleep(3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase(
    box: Sandbox, airflow_pid: int, path: str, rate: float, seconds: float, domain_s: float
) -> dict[str, Any]:
    """One rate on one batched path: feed, drain, check, measure."""
    engine = payments_engine(box.business_url)
    route_everything_to(engine, path, actor="benchmark", reason=f"{path} at {rate}/s")
    time.sleep(0.6)  # the flag provider re-reads the version in force every 0.25 s
    before = gateway_stats(box.gateway.url)["charges"]["succeeded"]
    print(f"  {path} at {rate}/s for {seconds}s", flush=True)
    with RssSampler(airflow_pid) as rss:
        ids, achieved = feed(engine, path, rate, seconds)
        rows = wait_settled(engine, ids, timeout=max(300.0, seconds * 4))
    with session_scope(engine) as session:
        completed = session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(OrderRow.order_id.in_(ids), OrderRow.status == "completed")
        )
        charges = dict(
            session.execute(
                select(ChargeRow.order_id, func.count())
                .where(ChargeRow.order_id.in_(ids))
                .group_by(ChargeRow.order_id)
            ).all()
        )
    done = [r for r in rows if r.finished_at is not None]
    latencies = [(r.finished_at - r.enqueued_at).total_seconds() for r in done]
    span = (max(r.finished_at for r in done) - min(r.enqueued_at for r in rows)).total_seconds()
    per_run = Counter(run for r in rows for run in r.runs.split()[-1:])
    return {
        "path": path,
        "dag_id": BATCH_DAG_OF_PATH[path],
        "offered_per_s": rate,
        "achieved_offered_per_s": round(achieved, 2),
        "orders": len(ids),
        "settled": len(done),
        "completed": completed,
        "orders_with_one_charge": sum(1 for n in charges.values() if n == 1),
        "orders_with_more_charges": sum(1 for n in charges.values() if n > 1),
        "gateway_charges": gateway_stats(box.gateway.url)["charges"]["succeeded"] - before,
        "sustained_orders_per_s": round(len(done) / span, 2) if span > 0 else None,
        "latency_p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
        "peak_rss_mib": rss.peaks(),
        "runs": breakdown(box, BATCH_DAG_OF_PATH[path], per_run, domain_s),
    }


def breakdown(box: Sandbox, dag_id: str, per_run: Counter, domain_s: float) -> dict[str, Any]:
    """``run_breakdown``, or what went wrong asking Airflow."""
    try:
        return run_breakdown(box.airflow.api(), dag_id, dict(per_run), domain_s)
    except httpx.HTTPError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def run(
    rates: list[float], seconds: float, baseline_orders: int, paths: list[str]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as home, sandbox(Path(home)) as box:
        engine = payments_engine(box.business_url)
        with session_scope(engine) as session:
            session.execute(update(StockRow).values(available=10_000_000))
        airflow_pid = int(box.airflow.pid_path.read_text().strip())
        for dag_id in ("payment_pipeline", *BATCH_DAG_OF_PATH.values()):
            box.airflow.api().wait_for_dag(dag_id)
        gateway = GatewayClient(box.gateway.url, timeout_seconds=5)
        settings = PaymentSettings(gateway_url=box.gateway.url)
        domain_s = domain_probe(
            PaymentDeps(engine=engine, gateway=gateway),
            [make_order("probe", i) for i in range(settings.batch_max_orders)],
            settings,
        )
        print(f"domain steps alone: {domain_s * 1000:.1f} ms/order wall", flush=True)
        print(f"baseline: payment_pipeline, {baseline_orders} orders at once", flush=True)
        try:
            baseline = linear_pipeline.measure(box, baseline_orders)
        except httpx.HTTPError as exc:  # an api-server starved for CPU: say so, go on
            baseline = {"error": f"{type(exc).__name__}: {exc}", "orders_per_second": None}
        phases = [phase(box, airflow_pid, p, r, seconds, domain_s) for p in paths for r in rates]
        gateway.close()
    for result in phases:
        per_order = baseline["orders_per_second"]
        result["ratio_to_payment_pipeline"] = (
            round((result["sustained_orders_per_s"] or 0) / per_order, 1) if per_order else None
        )
    return {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores",
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        "batch_settings": {
            "max_orders": settings.batch_max_orders,
            "max_wait_seconds": settings.batch_max_wait_seconds,
            "max_active_runs": settings.batch_max_active_runs,
            "step_threads": settings.batch_step_threads,
        },
        "domain_ms_per_order_without_airflow": round(domain_s * 1000, 2),
        "baseline_payment_pipeline": baseline,
        "phases": phases,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="2.8,14,50", help="offered orders/s, stepped")
    parser.add_argument("--seconds", type=float, default=30.0, help="feeding time per rate")
    parser.add_argument("--baseline-orders", type=int, default=30)
    parser.add_argument("--paths", default="dag,saga")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    result = run(rates, args.seconds, args.baseline_orders, args.paths.split(","))
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    ok = all(p["completed"] == p["orders"] == p["orders_with_one_charge"] for p in result["phases"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""What routing by the traffic split costs the event path (``benchmarks/event_path.py
--routing-comparison``).

Two things, in the same run and on the same fleet:

1. the latency-at-offered-rate phase (HTTP ``POST /orders``, paced open loop) once per router
   of the intake: ``flag`` (the front door as deployed: evaluates the 100% ``events`` split and
   records a route decision in the accepting transaction) and ``events`` (no flag evaluated, no
   decision row: ``SEGUE_INTAKE_ROUTER=events``). The intake is restarted with the router, warmed
   up, then measured; with two or more rounds the order alternates (flag, events, events, flag,
   ...) so a drift of the shared machine weighs on both alike. Compared: CPU seconds per 1,000
   orders (the fleet: our processes and our database's backends; RabbitMQ and the rest of
   PostgreSQL are shared with other work), the HTTP answer's p50/p99 (routing happens before
   the answer) and OrderPlaced -> ShippingNotified p50/p99 (stamped after routing).
2. the per-order cost of the decision measured in this process against the real database:
   building the context, the provider's evaluation, the OpenFeature client's evaluation, and
   ``segue.rollout.decide`` (lookup + client evaluation + the ``route_decisions`` insert), each
   in a transaction already begun, the commit excluded; the decision row's cost is ``decide``
   minus the client's evaluation, split into the lookup (``decision_of`` alone) and the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from event_path_fleet import Intake, place_paced_http_and_wait
from event_path_load import (
    EXAMPLE_CARD,
    Placement,
    distribution_ms,
    latencies,
    order_data,
)
from event_path_probe import CpuMeter
from openfeature.evaluation_context import EvaluationContext
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from include.payments.models import Order
from include.services.front_door import PAYMENT_FLAG, order_context
from segue.rollout import decide, decision_of, provider_for, rollout_client
from segue.store.engine import session_scope
from tools.services import ServiceProcess

ROUTERS = ("flag", "events")
WARM_UP_ORDERS = 20
WITHIN = 1.05  # the bar: routing within 5% of no routing


class RoutedFleet(Intake, Protocol):
    """What the comparison needs of ``event_path.Fleet``."""

    services: dict[str, ServiceProcess]

    def meter(self) -> CpuMeter: ...


def schedule(rounds: int) -> list[str]:
    """The routers in measuring order: flag, events, then events, flag, ... (ABBA)."""
    order: list[str] = []
    for index in range(rounds):
        order.extend(ROUTERS if index % 2 == 0 else reversed(ROUTERS))
    return order


def use_router(box: RoutedFleet, router: str, stalled_after: float) -> None:
    """Restart the intake (same port) with ``SEGUE_INTAKE_ROUTER=router`` and warm it up with a
    few orders over HTTP, waited for to the end of the path."""
    intake = box.services["intake"]
    intake.stop()
    intake.env = {**intake.env, "SEGUE_INTAKE_ROUTER": router}
    intake.restart()
    prefix = f"rwarm-{router}-{time.monotonic_ns()}-"
    placement = Placement(prefix)
    place_paced_http_and_wait(
        box,
        placement,
        rate=WARM_UP_ORDERS,
        seconds=1,
        threads=4,
        stalled_after=stalled_after,
        what=f"warm-up of the {router} intake",
    )


def fleet_cpu(cpu: dict[str, Any], services: list[str]) -> float:
    """CPU seconds of our processes and our database's backends in one phase's CPU reading."""
    seconds = cpu["cpu_seconds"]
    return sum(seconds.get(name, 0.0) for name in [*services, "postgres (our db backends)"])


def measure_router(
    box: RoutedFleet,
    router: str,
    prefix: str,
    *,
    rate: float,
    seconds: float,
    threads: int,
    stalled_after: float,
) -> dict[str, Any]:
    """One latency phase with the intake on ``router``: raw HTTP times and CPU seconds."""
    use_router(box, router, stalled_after)
    placement = Placement(prefix)
    meter = box.meter()
    print(
        f"routing: {int(rate * seconds)} orders at {rate:g}/s, intake router {router}", flush=True
    )
    meter.start()
    place_paced_http_and_wait(
        box,
        placement,
        rate=rate,
        seconds=seconds,
        threads=threads,
        stalled_after=stalled_after,
        what=f"orders of the {router} phase",
    )
    cpu = meter.stop(placement.placed)
    return {
        "router": router,
        "prefix": prefix,
        "accepted": placement.placed,
        "errors": placement.errors[:3],
        "http_response_seconds": placement.response_seconds,
        "cpu": cpu,
    }


def summarize(phases: list[dict[str, Any]], engine: Engine, services: list[str]) -> dict[str, Any]:
    """Per router, pooled over its rounds: CPU seconds per 1,000 orders, HTTP and end-to-end
    p50/p99; and the ratios flag / events."""
    per_router: dict[str, Any] = {}
    for router in ROUTERS:
        mine = [phase for phase in phases if phase["router"] == router]
        orders = sum(phase["accepted"] for phase in mine)
        fleet = sum(fleet_cpu(phase["cpu"], services) for phase in mine)
        intake = sum(phase["cpu"]["cpu_seconds"].get("intake", 0.0) for phase in mine)
        machine = sum(phase["cpu"]["machine_busy_percent_of_all_cpus"] for phase in mine)
        http = [value for phase in mine for value in phase["http_response_seconds"]]
        end_to_end = latencies(engine, f"rt-{router}-")
        per_router[router] = {
            "rounds": len(mine),
            "orders": orders,
            "completed": end_to_end["orders"],
            "http_errors": [error for phase in mine for error in phase["errors"]],
            "fleet_cpu_seconds_per_1000_orders": round(1000 * fleet / max(orders, 1), 2),
            "intake_cpu_seconds_per_1000_orders": round(1000 * intake / max(orders, 1), 2),
            "machine_busy_percent_mean": round(machine / max(len(mine), 1), 1),
            "http_response": distribution_ms(http),
            "order_placed_to_shipping_notified": end_to_end["order_placed_to_shipping_notified"],
            "phases": [
                {
                    "prefix": phase["prefix"],
                    "accepted": phase["accepted"],
                    "cpu": phase["cpu"],
                }
                for phase in mine
            ],
        }
    flag, plain = per_router["flag"], per_router["events"]

    def ratio(get: Callable[[dict[str, Any]], float | None]) -> float | None:
        over, under = get(flag), get(plain)
        return round(over / under, 3) if over and under else None

    ratios = {
        "fleet_cpu_per_1000_orders": ratio(lambda r: r["fleet_cpu_seconds_per_1000_orders"]),
        "intake_cpu_per_1000_orders": ratio(lambda r: r["intake_cpu_seconds_per_1000_orders"]),
        "http_p50": ratio(lambda r: r["http_response"].get("p50_ms")),
        "http_p99": ratio(lambda r: r["http_response"].get("p99_ms")),
        "end_to_end_p50": ratio(lambda r: r["order_placed_to_shipping_notified"].get("p50_ms")),
        "end_to_end_p99": ratio(lambda r: r["order_placed_to_shipping_notified"].get("p99_ms")),
    }
    within = {name: value is not None and value <= WITHIN for name, value in ratios.items()}
    return {"routers": per_router, "ratio_flag_to_no_routing": ratios, "within_5_percent": within}


def evaluation_cost(engine: Engine, orders: int) -> dict[str, Any]:
    """Per order, in this process against the real database: the context, the provider's and
    the OpenFeature client's evaluation, the stored-decision lookup and ``decide`` (one
    transaction per order, begun before the timing, commit excluded); wall and this thread's
    CPU microseconds."""
    flag = PAYMENT_FLAG
    tag = time.monotonic_ns()
    placed = [
        Order.model_validate({**order_data(f"rcost-{tag}-{i}"), **EXAMPLE_CARD})
        for i in range(orders)
    ]
    provider, client = provider_for(engine), rollout_client(engine)
    contexts = [order_context(order) for order in placed]
    provider.evaluate(flag.name, flag.baseline, contexts[0])  # load the version in force

    def timed(run: Callable[[], None]) -> dict[str, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        return {"wall_us": round(1e6 * wall / orders, 1), "cpu_us": round(1e6 * cpu / orders, 1)}

    def context() -> None:
        for order in placed:
            order_context(order)

    def by_provider() -> None:
        for attributes in contexts:
            provider.evaluate(flag.name, flag.baseline, attributes)

    def by_client() -> None:
        for attributes in contexts:
            client.get_string_details(
                flag.name,
                flag.baseline,
                EvaluationContext(targeting_key=attributes["order_id"], attributes=attributes),
            )

    def in_transactions(step: Callable[[Session, dict[str, Any]], object]) -> dict[str, float]:
        """``step`` once per order, each in its own transaction begun (and a statement run)
        before the timing, as the intake's placement would have begun it anyway; the commit
        is not timed."""
        wall = cpu = 0.0
        for attributes in contexts:
            with session_scope(engine) as session:
                session.execute(text("SELECT 1"))
                started, started_cpu = time.perf_counter(), time.thread_time()
                step(session, attributes)
                wall += time.perf_counter() - started
                cpu += time.thread_time() - started_cpu
        return {"wall_us": round(1e6 * wall / orders, 1), "cpu_us": round(1e6 * cpu / orders, 1)}

    paths: set[str] = set()
    looked_up = in_transactions(lambda session, a: decision_of(session, a["order_id"]))
    decided = in_transactions(
        lambda session, a: paths.add(decide(session, flag, a["order_id"], a).path)
    )
    evaluated = timed(by_client)
    row = {key: round(decided[key] - evaluated[key], 1) for key in ("wall_us", "cpu_us")}
    return {
        "orders": orders,
        "paths_decided": sorted(paths),
        "order_context": timed(context),
        "provider_evaluation": timed(by_provider),
        "openfeature_client_evaluation": evaluated,
        "decide_total": decided,
        "decision_row_lookup_and_insert": row,
        "of_which_lookup": looked_up,
        "of_which_insert": {key: round(row[key] - looked_up[key], 1) for key in row},
    }

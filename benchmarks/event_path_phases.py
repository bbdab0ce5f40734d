"""The measured phases of benchmarks/event_path.py on a running fleet: latency at a fixed offered
rate over HTTP, closed-loop throughput, the storm, and the routing comparison."""

from __future__ import annotations

import argparse
import time
from typing import Any

from event_path_fleet import STALLED_AFTER, Fleet, place_paced_http_and_wait
from event_path_load import (
    Placement,
    count_logged,
    count_orders,
    distribution_ms,
    latencies,
    place_closed_loop,
    throughput,
    wait_for,
)
from event_path_probe import Monitor
from event_path_routing import evaluation_cost, measure_router, schedule, summarize


def latency_phase(box: Fleet, rate: float, seconds: float, threads: int) -> dict[str, Any]:
    """Orders at ``rate``/s over HTTP for ``seconds``, paced open loop; their latencies."""
    prefix = "lat-"
    placement = Placement(prefix)
    total = int(rate * seconds)
    meter = box.meter()
    print(f"latency: {total} orders at {rate:g}/s over HTTP, open loop", flush=True)
    meter.start()
    with Monitor(
        box.services, lambda: (placement.placed, count_orders(box.engine, prefix)), label="latency"
    ) as monitor:
        place_paced_http_and_wait(
            box,
            placement,
            rate=rate,
            seconds=seconds,
            threads=threads,
            stalled_after=STALLED_AFTER,
            what="latency orders",
        )
    cpu = meter.stop(total)
    return {
        "offered_orders_per_second": rate,
        "seconds": seconds,
        "client_threads": threads,
        "intake": "HTTP POST /orders",
        "accepted": placement.placed,
        "errors": len(placement.errors),
        "first_errors": placement.errors[:3],
        "http_response": distribution_ms(placement.response_seconds),
        "send_lag_behind_schedule": distribution_ms(placement.lag_seconds),
        **latencies(box.engine, prefix),
        "max_total_backlog": monitor.peaks.max_total_backlog,
        "cpu": cpu,
    }


def throughput_phase(box: Fleet, orders: int, batch: int, window: int) -> dict[str, Any]:
    """``orders`` placed in process, closed loop; sustained orders/s and CPU."""
    prefix = "tput-"
    placement = Placement(prefix)
    meter = box.meter()
    print(
        f"throughput: {orders} orders via place_order, {batch}/transaction, window {window}",
        flush=True,
    )
    meter.start()
    with Monitor(
        box.services,
        lambda: (placement.placed, count_orders(box.engine, prefix)),
        label="throughput",
    ) as monitor:
        place_closed_loop(
            box.engine, placement, orders, batch=batch, window=window, stalled_after=STALLED_AFTER
        )
        wait_for(
            lambda: count_logged(box.engine, prefix) >= orders,
            lambda: count_logged(box.engine, prefix),
            stalled_after=STALLED_AFTER,
            what="throughput orders",
        )
    cpu = meter.stop(orders)
    return {
        "orders": orders,
        "intake": f"place_order in this process, {batch} orders per transaction (not HTTP)",
        "window": window,
        **throughput(box.engine, prefix),
        "max_backlog": monitor.peaks.max_backlog,
        "max_total_backlog": monitor.peaks.max_total_backlog,
        "circuit_opened": monitor.peaks.circuit_opened,
        "cpu": cpu,
    }


def storm_phase(box: Fleet, orders: int, batch: int) -> dict[str, Any]:
    """``orders`` placed as fast as possible; the breaker, the backlog and memory."""
    prefix = "storm-"
    placement = Placement(prefix)
    meter = box.meter()
    print(f"storm: {orders} orders as fast as possible", flush=True)
    meter.start()
    started = time.monotonic()
    with Monitor(
        box.services, lambda: (placement.placed, count_orders(box.engine, prefix)), label="storm"
    ) as monitor:
        place_closed_loop(
            box.engine, placement, orders, batch=batch, window=orders, stalled_after=STALLED_AFTER
        )
        placed_in = time.monotonic() - started
        wait_for(
            lambda: count_logged(box.engine, prefix) >= orders,
            lambda: count_logged(box.engine, prefix),
            stalled_after=STALLED_AFTER,
            what="storm orders",
        )
        monitor.sample()
    return {
        "orders": orders,
        "placed_in_seconds": round(placed_in, 1),
        "completed_in_db": count_orders(box.engine, prefix),
        "failed_in_db": count_orders(box.engine, prefix, "failed"),
        "shipping_notified_in_event_log": count_logged(box.engine, prefix),
        **throughput(box.engine, prefix),
        "circuit_opened": monitor.peaks.circuit_opened,
        "circuit_open_samples": monitor.peaks.circuit_open_samples,
        "max_backlog": monitor.peaks.max_backlog,
        "max_total_backlog": monitor.peaks.max_total_backlog,
        "rabbitmq_max_rss_kib_seen": monitor.peaks.rabbit_max_rss_kib,
        "cpu": meter.stop(orders),
    }


def routing_comparison(box: Fleet, args: argparse.Namespace) -> dict[str, Any]:
    """The latency phase with and without routing (alternating), then the in-process cost of
    one decision; the figures of event_path_routing.json."""
    phases = [
        measure_router(
            box,
            router,
            f"rt-{router}-{index}-",
            rate=args.rate,
            seconds=args.seconds,
            threads=args.threads,
            stalled_after=STALLED_AFTER,
        )
        for index, router in enumerate(schedule(args.routing_rounds))
    ]
    processes = [*box.services, "gateway"]
    print(f"evaluation cost: {args.routing_orders} decisions in this process", flush=True)
    return {
        "offered_orders_per_second": args.rate,
        "seconds_per_phase": args.seconds,
        "client_threads": args.threads,
        "order_of_phases": [phase["router"] for phase in phases],
        "comparison": summarize(phases, box.engine, processes),
        "evaluation_cost": evaluation_cost(box.engine, args.routing_orders),
    }

"""Benchmark of the event path: the choreography on RabbitMQ + PostgreSQL, end to end.

    .venv/bin/python benchmarks/event_path.py --orders 5000      # ~3-5 minutes
    .venv/bin/python benchmarks/event_path.py --storm 20000      # the burst test, minutes

Starts everything itself on a fresh RabbitMQ vhost and a fresh PostgreSQL database: the gateway
(latency 0, failure rate 0), the five payment services, the event log and the intake (HTTP front
+ its outbox relay), with the catalog seeded with 10,000,000 units per SKU. All orders are good
orders (7 events each: placed, validated, reserved, charged, inventory updated, receipt,
shipping), so every one must complete. Phases, in one invocation (the machine is shared):

1. ceiling: confirmed publishes/s from as many publisher processes as there are relays (the five
   services + the intake), each its own connection, publishing a real OrderPlaced through
   segue's ``Publisher`` (confirms, persistent, mandatory) into a quorum queue declared like a
   service queue; divided by the events one order needs (counted from the event log of a warm-up
   order), that is the order rate the broker's confirm path allows on this machine. It runs
   before the services start, so it does not compete with them.
2. latency: ``--rate`` orders/s (default 100) for ``--seconds`` (30) through HTTP POST /orders,
   paced open-loop by a pool of client threads (the real entry, including the relay wake-up).
   Latency per order = ShippingNotified ``time`` - OrderPlaced ``time`` (CloudEvents attributes,
   stamped by the intake and the shipping service, read from the event_log table); the same up
   to ShippingNotified's ``recorded_at`` in the event log is reported alongside.
3. throughput: ``--orders`` (5000) placed by calling the intake's own ``place_order`` in this
   process, ``--batch`` orders per transaction, with at most ``--window`` orders in flight
   (closed loop: the system is kept saturated without building a burst). HTTP is not used here:
   on 2 cores an HTTP client plus uvicorn would cost more CPU than some services and the load
   generator would be what is measured. Sustained orders/s = completed orders / (last
   ShippingNotified ``time`` - first OrderPlaced ``time``).

During each phase the CPU seconds (utime+stime from /proc/<pid>/stat) of every service, the
gateway, RabbitMQ (beam.smp), PostgreSQL and this process are recorded: CPU seconds per 1000
orders show where the time goes. Peak RSS is VmHWM of each service and beam.smp's RSS.

``--routing-comparison`` instead measures what the front door's routing costs: the latency
phase once with the intake routing by the flag (100% ``events``) and once without routing
(``SEGUE_INTAKE_ROUTER=events``), ``--routing-rounds`` times each, and the per-order cost of the
flag evaluation and the decision row in this process (``--routing-orders``); see
``event_path_routing.py``. Writes results/event_path_routing.json.

``--storm N`` instead places N orders as fast as possible and reports whether the relays'
backlog circuit breaker opened, the largest backlog seen, peak RSS per service, and that every
order completed (results/event_path_storm.json).

Writes benchmarks/results/event_path.json. Targets: >= 300 orders/s sustained, >= 60% of the
ceiling, p99 < 250 ms at 100 orders/s offered. Exit code 1 when an order did not complete.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from event_path_ceiling import publish_ceiling
from event_path_load import (
    BENCHMARK_CLIENT,
    Placement,
    count_logged,
    count_orders,
    distribution_ms,
    events_of_order,
    latencies,
    place_batch,
    place_closed_loop,
    place_paced_http,
    throughput,
    wait_for,
)
from event_path_probe import (
    CpuMeter,
    Monitor,
    machine_info,
    peak_rss,
    pg_counters,
    rabbitmq_memory,
)
from event_path_profiled import profiled_services, read_profiles
from event_path_report import (
    limits,
    print_routing_summary,
    print_storm_summary,
    print_summary,
    targets,
)
from event_path_routing import evaluation_cost, measure_router, schedule, summarize
from sqlalchemy import Engine

import segue.eventlog.store  # noqa: F401  (registers event_log before the schema is created)
from include.payments.catalog import seed_catalog
from include.payments.database import payments_engine
from include.services import EVENT_PATH_PROCESSES
from include.services.api_clients import create_client
from include.services.front_door import route_everything_to
from segue.store.engine import session_scope
from tools.broker import fresh_vhost
from tools.gateway import GatewayProcess, start_gateway
from tools.ports import unused_port
from tools.sandbox import fresh_database
from tools.services import ServiceProcess, start_services

RESULTS = Path(__file__).parent / "results"
STOCK = 10_000_000
FLEET = dict(EVENT_PATH_PROCESSES)
RELAYS = len(EVENT_PATH_PROCESSES) - 1  # every process but the event log publishes
STALLED_AFTER = 90.0


@dataclass
class Fleet:
    services: dict[str, ServiceProcess]
    gateway: GatewayProcess
    engine: Engine
    database: str
    intake_url: str
    log_dir: Path
    api_key: str

    def meter(self) -> CpuMeter:
        pids = {name: service.pid for name, service in self.services.items()}
        return CpuMeter(
            {**pids, "gateway": self.gateway.pid},
            self.database,
            lambda: pg_counters(self.engine, self.database),
        )

    def counts(self) -> dict[str, dict[str, Any]]:
        found = {}
        for name, service in self.services.items():
            metrics = service.metrics()
            found[name] = {
                **metrics.get("counts", {}),
                "circuit_opened": metrics.get("circuit_opened"),
            }
        return found


@contextmanager
def fleet(
    log_dir: Path, *, profile: bool = False, env: dict[str, str] | None = None
) -> Iterator[Fleet]:
    """Fresh vhost + database, gateway, services, event log and intake, all ready (each under
    cProfile with ``profile``)."""
    tag = f"event-path-{os.getpid()}"
    with (
        fresh_vhost(f"segue-bench-{tag}") as amqp_url,
        fresh_database(f"segue_bench_{tag.replace('-', '_')}") as database_url,
        start_gateway(
            failure_rate=0,
            log_path=log_dir / "gateway.log",
            extra_args=("--latency-mean-ms", "0", "--timeout-rate", "0", "--log-level", "warning"),
        ) as gateway,
    ):
        engine = payments_engine(database_url)
        with session_scope(engine) as session:
            seed_catalog(session, stock=STOCK)
            api_key = create_client(session, BENCHMARK_CLIENT)
        # Through the front door with a 100% events split: the benchmark measures routing too.
        route_everything_to(engine, "events", actor="benchmark", reason="event-path benchmark")
        intake_port = unused_port()
        print(f"starting {len(FLEET)} services (logs in {log_dir})", flush=True)
        launch = profiled_services if profile else start_services
        with launch(
            FLEET,
            database_url=database_url,
            amqp_url=amqp_url,
            gateway_url=gateway.url,
            log_dir=log_dir,
            extra_env={
                "SEGUE_INTAKE_PORT": str(intake_port),
                # the benchmark measures the path, not the per-client limit
                "SEGUE_INTAKE_RATE_PER_SECOND": "1000000",
                "SEGUE_INTAKE_RATE_BURST": "1000000",
                **(env or {}),
            },
        ) as services:
            yield Fleet(
                services,
                gateway,
                engine,
                database_url.rsplit("/", 1)[1],
                f"http://127.0.0.1:{intake_port}",
                log_dir,
                api_key,
            )
        engine.dispose()


def warm_up(box: Fleet, orders: int = 20) -> dict[str, int]:
    """A few orders through the whole path; the event types one order produced."""
    place_batch(box.engine, [f"warm-{i}" for i in range(orders)])
    wait_for(
        lambda: count_logged(box.engine, "warm-") >= orders,
        lambda: count_logged(box.engine, "warm-"),
        stalled_after=STALLED_AFTER,
        what="warm-up orders",
    )
    return events_of_order(box.engine, "warm-0")


def idle_phase(box: Fleet, seconds: float = 5.0) -> dict[str, Any]:
    """CPU of the fleet with nothing to do: the cost of polling (relays, consumers, metrics)."""
    meter = box.meter()
    meter.start()
    time.sleep(seconds)
    cpu = meter.stop(1)
    return {"seconds": seconds, "cpu_percent_of_one_core": cpu["cpu_percent_of_one_core"]}


def latency_phase(box: Fleet, rate: float, seconds: float, threads: int) -> dict[str, Any]:
    prefix = "lat-"
    placement = Placement(prefix)
    total = int(rate * seconds)
    meter = box.meter()
    print(f"latency: {total} orders at {rate:g}/s over HTTP, open loop", flush=True)
    meter.start()
    with Monitor(
        box.services, lambda: (placement.placed, count_orders(box.engine, prefix)), label="latency"
    ) as monitor:
        place_paced_http(
            box.intake_url,
            placement,
            api_key=box.api_key,
            rate=rate,
            seconds=seconds,
            threads=threads,
        )
        wait_for(
            lambda: count_logged(box.engine, prefix) >= placement.placed,
            lambda: count_logged(box.engine, prefix),
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


def write(name: str, result: dict[str, Any]) -> None:
    path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=5000, help="orders of the throughput phase")
    parser.add_argument("--batch", type=int, default=50, help="orders per place_order transaction")
    parser.add_argument(
        "--window", type=int, default=1500, help="max orders in flight (throughput)"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="offered orders/s (latency)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of the latency phase")
    parser.add_argument("--threads", type=int, default=16, help="HTTP client threads (latency)")
    parser.add_argument("--ceiling-seconds", type=float, default=10.0)
    parser.add_argument(
        "--publishers", type=int, default=RELAYS, help="ceiling publisher processes"
    )
    parser.add_argument(
        "--routing-comparison",
        action="store_true",
        help="only the latency phase with and without routing, and the decision's cost",
    )
    parser.add_argument(
        "--routing-rounds", type=int, default=2, help="phases per router (alternating order)"
    )
    parser.add_argument(
        "--routing-orders", type=int, default=5000, help="decisions timed in process"
    )
    parser.add_argument("--storm", type=int, default=0, help="run only the storm with N orders")
    parser.add_argument(
        "--backlog-threshold",
        type=int,
        default=None,
        help="the relays' circuit breaker threshold (default: the services' own, 5000)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="only --orders through cProfiled services"
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="service logs (default: a temp dir)"
    )
    args = parser.parse_args()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="segue-event-path-"))
    result: dict[str, Any] = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "command": f"benchmarks/event_path.py {' '.join(sys.argv[1:])}".strip(),
        "machine": machine_info(),
        "log_dir": str(log_dir),
    }
    env = {}
    if args.backlog_threshold is not None:
        env["SEGUE_RELAY_BACKLOG_THRESHOLD"] = str(args.backlog_threshold)
        result["relay_backlog_threshold"] = args.backlog_threshold
    if args.profile:
        with fleet(log_dir, profile=True, env=env) as box:
            result["events_per_order"] = warm_up(box)
            result["throughput"] = throughput_phase(box, args.orders, args.batch, args.window)
        result["profiles"] = read_profiles(log_dir, FLEET)
        print(json.dumps(result["profiles"], indent=1))
        write("event_path_profile.json", result)
        return 0
    if args.routing_comparison:
        with fleet(log_dir, env=env) as box:
            result["events_per_order"] = warm_up(box)
            result.update(routing_comparison(box, args))
        result["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        print_routing_summary(result)
        write("event_path_routing.json", result)
        routers = result["comparison"]["routers"].values()
        complete = all(r["completed"] == r["orders"] and not r["http_errors"] for r in routers)
        return 0 if complete else 1
    if args.storm:
        with fleet(log_dir, env=env) as box:
            result["events_per_order"] = warm_up(box)
            result["storm"] = storm_phase(box, args.storm, batch=200)
            result["counts"] = box.counts()
            result["peak_rss_kib"] = peak_rss(box.services)
            result["rabbitmq_memory"] = rabbitmq_memory()
        storm = result["storm"]
        storm["every_order_completed"] = (
            storm["completed_in_db"] == storm["shipping_notified_in_event_log"] == args.storm
        )
        storm["circuit_breaker_opened"] = sum(storm["circuit_opened"].values()) > 0
        print_storm_summary(result)
        write("event_path_storm.json", result)
        return 0 if storm["every_order_completed"] else 1

    print(
        f"ceiling: {args.publishers} publisher processes for {args.ceiling_seconds:g}s", flush=True
    )
    with fresh_vhost(f"segue-bench-ceiling-{os.getpid()}") as ceiling_url:
        result["ceiling"] = publish_ceiling(ceiling_url, args.publishers, args.ceiling_seconds)
    print(
        f"  {result['ceiling']['confirmed_publishes_per_second']} confirmed publishes/s", flush=True
    )
    with fleet(log_dir, env=env) as box:
        events = warm_up(box)
        result["events_per_order"] = events
        result["idle"] = idle_phase(box)
        result["latency"] = latency_phase(box, args.rate, args.seconds, args.threads)
        result["throughput"] = throughput_phase(box, args.orders, args.batch, args.window)
        result["counts"] = box.counts()
        result["peak_rss_kib"] = peak_rss(box.services)
        result["rabbitmq_memory"] = rabbitmq_memory()
    per_order = sum(events.values())
    ceiling_orders = result["ceiling"]["confirmed_publishes_per_second"] / per_order
    result["ceiling"]["events_per_order"] = per_order
    result["ceiling"]["orders_per_second"] = round(ceiling_orders, 1)
    sustained = result["throughput"].get("orders_per_second") or 0.0
    result["ratio_sustained_to_ceiling"] = round(sustained / ceiling_orders, 3)
    result["targets"] = targets(result)
    nproc = result["machine"]["nproc"] or 1
    result["throughput_limits"] = limits(result["throughput"]["cpu"], nproc)
    result["latency_limits"] = limits(result["latency"]["cpu"], nproc)
    print_summary(result)
    write("event_path.json", result)
    complete = result["throughput"]["completed"] == args.orders
    return 0 if complete and result["latency"]["orders"] == result["latency"]["accepted"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

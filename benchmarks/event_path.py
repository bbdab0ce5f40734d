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
from datetime import datetime
from pathlib import Path
from typing import Any

from event_path_ceiling import publish_ceiling
from event_path_celery import celery_phase
from event_path_fleet import FLEET, RELAYS, Fleet, fleet, idle_phase, warm_up
from event_path_phases import latency_phase, routing_comparison, storm_phase, throughput_phase
from event_path_probe import machine_info, peak_rss, rabbitmq_memory
from event_path_profiled import read_profiles
from event_path_report import (
    limits,
    print_routing_summary,
    print_side_by_side,
    print_storm_summary,
    print_summary,
    targets,
)
from event_path_stepped import print_stepped, stepped_phase

from tools.broker import fresh_vhost

__all__ = ["FLEET", "Fleet", "fleet", "idle_phase", "warm_up"]  # moved to event_path_fleet

RESULTS = Path(__file__).parent / "results"
PHASES = ("ceiling", "latency", "throughput", "stepped", "celery")


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
        "--profile",
        action="store_true",
        help="only --orders (or with --phases stepped, --rates) through cProfiled services",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="service logs (default: a temp dir)"
    )
    parser.add_argument("--phases", default=",".join(PHASES), help=f"of {','.join(PHASES)}")
    parser.add_argument(
        "--rates", default="25,50,100,150,200,300", help="offered orders/s of the stepped phase"
    )
    parser.add_argument("--step-seconds", type=float, default=20.0, help="arrivals per rate")
    parser.add_argument("--step-threads", type=int, default=32, help="HTTP client threads")
    parser.add_argument(
        "--give-up-ms", type=float, default=2000.0, help="stop stepping past this p99"
    )
    parser.add_argument(
        "--spy",
        action="store_true",
        help="py-spy records every service during each step: CPU-ms per order by part of the "
        "code (the profiler's own CPU counts in that run's figures)",
    )
    parser.add_argument("--celery-rates", default="50", help="offered orders/s, Celery chain")
    parser.add_argument("--celery-concurrency", type=int, default=4, help="Celery pool size")
    parser.add_argument("--results", default="event_path.json", help="under benchmarks/results")
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
            if args.phases == "stepped":  # the fixed cost per message at moderate rates
                rates = rates_of(args.rates)
                result["stepped"] = stepped_phase(box, rates, args.step_seconds, args.step_threads)
            else:
                result["throughput"] = throughput_phase(box, args.orders, args.batch, args.window)
        result["profiles"] = read_profiles(log_dir, FLEET)
        print(json.dumps(result["profiles"], indent=1))
        write(args.results.replace(".json", "_profile.json"), result)
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

    phases = set(args.phases.split(","))
    if phases - set(PHASES):
        parser.error(f"--phases: unknown {sorted(phases - set(PHASES))}; known {PHASES}")
    run_phases(result, args, phases, log_dir, env)
    print_summary(result)
    write(args.results, result)
    return 0 if all_completed(result, args) else 1


def rates_of(text: str) -> list[float]:
    """``"25,50,100"`` -> [25.0, 50.0, 100.0]."""
    return [float(rate) for rate in text.split(",") if rate]


def run_phases(
    result: dict[str, Any],
    args: argparse.Namespace,
    phases: set[str],
    log_dir: Path,
    env: dict[str, str],
) -> None:
    """The chosen phases into ``result``, in a fixed order, the fleet started once.

    :param result: the results document, filled in.
    :param args: the command line.
    :param phases: which of PHASES to run.
    :param log_dir: the services' logs.
    :param env: extra service environment.
    """
    if "ceiling" in phases:
        print(f"ceiling: {args.publishers} publishers for {args.ceiling_seconds:g}s", flush=True)
        with fresh_vhost(f"segue-bench-ceiling-{os.getpid()}") as ceiling_url:
            ceiling = publish_ceiling(ceiling_url, args.publishers, args.ceiling_seconds)
        result["ceiling"] = ceiling
        print(f"  {ceiling['confirmed_publishes_per_second']} confirmed publishes/s", flush=True)
    with fleet(log_dir, env=env) as box:
        events = warm_up(box)
        result["events_per_order"] = events
        result["idle"] = idle_phase(box)
        if "stepped" in phases:
            result["stepped"] = stepped_phase(
                box,
                rates_of(args.rates),
                args.step_seconds,
                args.step_threads,
                give_up_above_ms=args.give_up_ms,
                spy_dir=log_dir / "py-spy" if args.spy else None,
            )
        if "celery" in phases:
            result["celery_chain"] = celery_phase(
                box, rates_of(args.celery_rates), args.step_seconds, args.celery_concurrency
            )
        if "latency" in phases:
            result["latency"] = latency_phase(box, args.rate, args.seconds, args.threads)
        if "throughput" in phases:
            result["throughput"] = throughput_phase(box, args.orders, args.batch, args.window)
        result["counts"] = box.counts()
        result["peak_rss_kib"] = peak_rss(box.services)
        result["rabbitmq_memory"] = rabbitmq_memory()
    result["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    nproc = result["machine"]["nproc"] or 1
    if "ceiling" in result and "throughput" in result:
        per_order = sum(events.values())
        ceiling_orders = result["ceiling"]["confirmed_publishes_per_second"] / per_order
        result["ceiling"]["events_per_order"] = per_order
        result["ceiling"]["orders_per_second"] = round(ceiling_orders, 1)
        sustained = result["throughput"].get("orders_per_second") or 0.0
        result["ratio_sustained_to_ceiling"] = round(sustained / ceiling_orders, 3)
    if "latency" in result and "throughput" in result and "ceiling" in result:
        result["targets"] = targets(result)
    for phase in ("throughput", "latency"):
        if phase in result:
            result[f"{phase}_limits"] = limits(result[phase]["cpu"], nproc)
    if "stepped" in result:
        print_stepped(result["stepped"])
    print_side_by_side(result)


def all_completed(result: dict[str, Any], args: argparse.Namespace) -> bool:
    """Every order of every phase that ran completed."""
    done = True
    if "throughput" in result:
        done = done and result["throughput"]["completed"] == args.orders
    if "latency" in result:
        done = done and result["latency"]["orders"] == result["latency"]["accepted"]
    for step in result.get("stepped", {}).get("steps", []):
        done = done and step["orders"] == step["accepted"]
    return done


if __name__ == "__main__":
    raise SystemExit(main())

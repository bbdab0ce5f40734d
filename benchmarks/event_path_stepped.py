"""The open-loop stepped-rate phase of benchmarks/event_path.py: Poisson arrivals over HTTP at
each offered rate in turn, each long enough for a steady state, with latency percentiles, CPU
per order (all processes) and the machine's busy share per rate, and the highest rate whose p99
stays within the target."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from event_path_fleet import STALLED_AFTER, Fleet, place_paced_http_and_wait
from event_path_load import (
    Placement,
    count_orders,
    distribution_ms,
    latencies,
)
from event_path_probe import Monitor
from event_path_spy import breakdown, print_breakdown, spying

TARGET_P99_MS = 250.0
# Shared processes: PostgreSQL's and RabbitMQ's other work is counted in "all processes";
# "postgres (our db backends)" is part of "postgres (all processes)", so it is not added twice.
NOT_SUMMED = ("postgres (our db backends)",)
FLEET_ONLY_EXCLUDES = ("postgres (all processes)", "rabbitmq (beam.smp)")


def loadavg() -> list[str]:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    return Path("/proc/loadavg").read_text().split()[:3]


def cpu_per_1000(cpu: dict[str, Any]) -> dict[str, float]:
    """CPU-s per 1,000 orders, all processes (shared PostgreSQL and RabbitMQ whole) and the
    fleet's own (our services, our database backends, the gateway, the load generator).

    :param cpu: a ``CpuMeter.stop`` reading.
    """
    per = cpu["cpu_seconds_per_1000_orders"]
    every = sum(v for k, v in per.items() if k not in NOT_SUMMED)
    own = sum(v for k, v in per.items() if k not in FLEET_ONLY_EXCLUDES)
    return {"all_processes": round(every, 2), "fleet_and_our_db_backends": round(own, 2)}


def one_rate(
    box: Fleet, rate: float, seconds: float, threads: int, spy_dir: Path | None = None
) -> dict[str, Any]:
    """Poisson arrivals at ``rate``/s over HTTP for ``seconds``, then the drain; its figures.

    :param box: the fleet.
    :param rate: offered orders/s.
    :param seconds: how long orders arrive.
    :param threads: HTTP client threads.
    :param spy_dir: py-spy records every service while orders arrive, its files go here, and
        the step gains CPU-ms per order by part of the code (None: no profiler).
    """
    prefix = f"step{rate:g}-"
    placement = Placement(prefix)
    meter = box.meter()
    print(f"stepped: {rate:g} orders/s offered over HTTP (Poisson) for {seconds:g}s", flush=True)
    pids = {name: service.pid for name, service in box.services.items()}
    spies = spying(pids, seconds, spy_dir, f"{rate:g}") if spy_dir else nullcontext({})
    meter.start()
    with (
        spies as profiles,
        Monitor(
            box.services, lambda: (placement.placed, count_orders(box.engine, prefix)), label=prefix
        ) as monitor,
    ):
        place_paced_http_and_wait(
            box,
            placement,
            rate=rate,
            seconds=seconds,
            threads=threads,
            stalled_after=STALLED_AFTER,
            what=f"{prefix} orders",
            poisson=True,
            seed=int(rate),
        )
    cpu = meter.stop(placement.placed)
    found = latencies(box.engine, prefix)
    spied = {}
    if profiles:  # CPU-s per 1,000 orders is CPU-ms per order
        per_order = cpu["cpu_seconds_per_1000_orders"]
        spied = {"py_spy": breakdown(profiles, per_order, NOT_SUMMED)}
        print_breakdown(f"{rate:g} orders/s", spied["py_spy"])
    return {
        "offered_orders_per_second": rate,
        "seconds": seconds,
        "accepted": placement.placed,
        "errors": len(placement.errors),
        "first_errors": placement.errors[:3],
        "http_response": distribution_ms(placement.response_seconds),
        "send_lag_behind_schedule": distribution_ms(placement.lag_seconds),
        **found,
        "cpu_seconds_per_1000_orders": cpu_per_1000(cpu),
        "machine_busy_percent": cpu["machine_busy_percent_of_all_cpus"],
        "max_total_backlog": monitor.peaks.max_total_backlog,
        "loadavg_at_end": loadavg(),
        "cpu": cpu,
        **spied,
    }


def stepped_phase(
    box: Fleet,
    rates: list[float],
    seconds: float,
    threads: int,
    *,
    give_up_above_ms: float = 2000.0,
    spy_dir: Path | None = None,
) -> dict[str, Any]:
    """Each offered rate in turn; stops after a rate whose p99 passed ``give_up_above_ms``
    (higher rates would only queue more).

    :param box: the fleet.
    :param rates: offered orders/s, ascending.
    :param seconds: arrivals per step.
    :param threads: HTTP client threads.
    :param give_up_above_ms: the p99 past which higher rates are skipped.
    :param spy_dir: profile every step with py-spy, files here (see ``one_rate``).
    """
    steps = []
    for rate in rates:
        step = one_rate(box, rate, seconds, threads, spy_dir)
        steps.append(step)
        p99 = step["order_placed_to_shipping_notified"].get("p99_ms", float("inf"))
        print(
            f"  {rate:g}/s: p50/p95/p99 "
            f"{step['order_placed_to_shipping_notified'].get('p50_ms')}/"
            f"{step['order_placed_to_shipping_notified'].get('p95_ms')}/{p99} ms, "
            f"{step['cpu_seconds_per_1000_orders']['all_processes']} CPU-s/1000 orders, "
            f"machine {step['machine_busy_percent']}% busy, load {step['loadavg_at_end']}",
            flush=True,
        )
        if p99 > give_up_above_ms:
            break
    return {
        "arrivals": "Poisson, over HTTP POST /orders",
        "steps": steps,
        "highest_rate_p99_within_target": highest_within(steps),
        "target_p99_ms": TARGET_P99_MS,
    }


def highest_within(steps: list[dict[str, Any]], limit_ms: float = TARGET_P99_MS) -> float | None:
    """The highest offered rate whose p99 was within ``limit_ms`` with every order accepted.

    :param steps: the stepped phase's per-rate figures.
    :param limit_ms: the p99 bound.
    """
    good = [
        step["offered_orders_per_second"]
        for step in steps
        if step["errors"] == 0
        and step["order_placed_to_shipping_notified"].get("p99_ms", float("inf")) <= limit_ms
    ]
    return max(good) if good else None


def print_stepped(stepped: dict[str, Any]) -> None:
    """The stepped phase as a table.

    :param stepped: ``stepped_phase``'s result.
    """
    print("\nstepped rate (Poisson arrivals over HTTP):")
    print(
        f"  {'offered/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU-s/1000':>11}"
        f" {'fleet':>7} {'busy %':>7}  load"
    )
    for step in stepped["steps"]:
        lat = step["order_placed_to_shipping_notified"]
        cpu = step["cpu_seconds_per_1000_orders"]
        print(
            f"  {step['offered_orders_per_second']:>9g} {lat.get('p50_ms', '-')!s:>8}"
            f" {lat.get('p95_ms', '-')!s:>8} {lat.get('p99_ms', '-')!s:>8}"
            f" {cpu['all_processes']:>11} {cpu['fleet_and_our_db_backends']:>7}"
            f" {step['machine_busy_percent']:>7}  {' '.join(step['loadavg_at_end'])}"
        )
    print(
        f"  highest offered rate with p99 <= {stepped['target_p99_ms']:g} ms:"
        f" {stepped['highest_rate_p99_within_target']}"
    )

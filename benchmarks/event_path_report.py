"""Targets, the limit analysis and the printed summaries of benchmarks/event_path.py."""

from __future__ import annotations

from typing import Any

TARGET_ORDERS_PER_SECOND = 300.0
TARGET_CEILING_RATIO = 0.60
TARGET_P99_MS = 250.0
TARGET_OFFERED_RATE = 100.0
# "postgres (our db backends)" is part of "postgres (all processes)": not added twice.
NOT_SUMMED = ("postgres (our db backends)",)


def targets(result: dict[str, Any]) -> dict[str, Any]:
    sustained = result["throughput"].get("orders_per_second") or 0.0
    ratio = result["ratio_sustained_to_ceiling"]
    latency = result["latency"]
    p99 = latency["order_placed_to_shipping_notified"].get("p99_ms")
    rate = latency["offered_orders_per_second"]
    return {
        "sustained_orders_per_second": {
            "target": f">= {TARGET_ORDERS_PER_SECOND:g}",
            "measured": sustained,
            "met": sustained >= TARGET_ORDERS_PER_SECOND,
        },
        "ratio_to_ceiling": {
            "target": f">= {TARGET_CEILING_RATIO:.0%}",
            "measured": ratio,
            "met": ratio >= TARGET_CEILING_RATIO,
        },
        "p99_ms_at_100_per_s": {
            "target": f"< {TARGET_P99_MS:g} ms at {TARGET_OFFERED_RATE:g} orders/s offered",
            "measured": p99,
            "offered": rate,
            "met": (
                p99 is not None
                and p99 < TARGET_P99_MS
                and rate >= TARGET_OFFERED_RATE
                and latency["errors"] == 0
            ),
        },
    }


def limits(cpu: dict[str, Any], nproc: int) -> dict[str, Any]:
    """Where the CPU went in a phase, and what that says about the limit."""
    per_1000 = cpu["cpu_seconds_per_1000_orders"]
    busy = cpu["cpu_percent_of_one_core"]
    summed = {name: value for name, value in per_1000.items() if name not in NOT_SUMMED}
    total = sum(summed.values())
    busiest = max((n for n in busy if n not in NOT_SUMMED), key=lambda n: busy[n])
    ranking = sorted(summed.items(), key=lambda item: item[1], reverse=True)
    return {
        "cpu_seconds_per_1000_orders_total": round(total, 2),
        "cpu_bound_estimate_orders_per_second": round(1000 * nproc / total, 1) if total else None,
        "machine_busy_percent": cpu["machine_busy_percent_of_all_cpus"],
        "busiest_process": busiest,
        "busiest_process_percent_of_one_core": busy[busiest],
        "ranking_cpu_seconds_per_1000_orders": ranking,
    }


def _row(label: str, value: object, target: dict[str, Any] | None = None) -> str:
    mark = ""
    if target is not None:
        mark = f"{target['target']:>34}  {'met' if target['met'] else 'NOT MET'}"
    return f"  {label:<44}{value!s:>14}  {mark}"


def _cpu_table(cpu: dict[str, Any]) -> None:
    print(f"  {'process':<30}{'cpu s':>8}{'% core':>8}{'s/1000 orders':>15}")
    for name, seconds in sorted(cpu["cpu_seconds"].items(), key=lambda i: -i[1]):
        print(
            f"  {name:<30}{seconds:>8.1f}{cpu['cpu_percent_of_one_core'][name]:>8.1f}"
            f"{cpu['cpu_seconds_per_1000_orders'][name]:>15.2f}"
        )
    print(f"  machine busy: {cpu['machine_busy_percent_of_all_cpus']}% of all CPUs")
    print(f"  PostgreSQL per order (pg_stat_database): {cpu.get('postgres_per_order')}")


def print_summary(result: dict[str, Any]) -> None:
    """The full run's summary (nothing when a phase it reads did not run)."""
    if "targets" not in result:
        return
    t, lat, tp, ceil = result["targets"], result["latency"], result["throughput"], result["ceiling"]
    shipped = lat["order_placed_to_shipping_notified"]
    print("\n=== event path summary ===")
    print(
        f"  machine: {result['machine']['nproc']} CPUs,"
        f" load at start {result['machine']['loadavg_at_start']}"
    )
    print(f"  events per order (from the event log): {result['events_per_order']}")
    print(_row("sustained orders/s", tp.get("orders_per_second"), t["sustained_orders_per_second"]))
    print(_row("  completed / orders", f"{tp['completed']}/{tp['orders']}"))
    print(_row("  wall s (first placed -> last shipped)", tp.get("wall_seconds")))
    print(_row("confirmed publishes/s (ceiling)", ceil["confirmed_publishes_per_second"]))
    print(_row("ceiling orders/s (publishes / events)", ceil["orders_per_second"]))
    print(_row("sustained / ceiling", result["ratio_sustained_to_ceiling"], t["ratio_to_ceiling"]))
    print(_row(f"latency p50 ms @ {lat['offered_orders_per_second']:g}/s", shipped.get("p50_ms")))
    print(_row("latency p95 ms", shipped.get("p95_ms")))
    print(_row("latency p99 ms", shipped.get("p99_ms"), t["p99_ms_at_100_per_s"]))
    print(_row("  latency max ms", shipped.get("max_ms")))
    print(_row("  accepted / HTTP errors", f"{lat['accepted']}/{lat['errors']}"))
    print(_row("  HTTP POST p99 ms", lat["http_response"].get("p99_ms")))
    print("  peak RSS (VmHWM) per service, MiB:")
    for name, kib in result["peak_rss_kib"].items():
        print(f"    {name:<20}{kib / 1024:8.1f}")
    print(f"  RabbitMQ: {result['rabbitmq_memory']}")
    print("\n  CPU during the throughput phase:")
    _cpu_table(tp["cpu"])
    limit = result["throughput_limits"]
    print(
        f"  total {limit['cpu_seconds_per_1000_orders_total']} CPU s per 1000 orders -> "
        f"CPU-bound estimate {limit['cpu_bound_estimate_orders_per_second']} orders/s on "
        f"{result['machine']['nproc']} CPUs; busiest process {limit['busiest_process']} at "
        f"{limit['busiest_process_percent_of_one_core']}% of one core"
    )
    idle = {k: v for k, v in result["idle"]["cpu_percent_of_one_core"].items() if v}
    print(f"\n  idle fleet, % of one core over {result['idle']['seconds']:g}s: {idle}")
    print("\n  CPU during the latency phase:")
    _cpu_table(lat["cpu"])


def print_storm_summary(result: dict[str, Any]) -> None:
    storm = result["storm"]
    print("\n=== event path storm summary ===")
    print(_row("orders", storm["orders"]))
    print(_row("placed in s", storm["placed_in_seconds"]))
    print(_row("completed (orders table)", storm["completed_in_db"]))
    print(_row("ShippingNotified in event log", storm["shipping_notified_in_event_log"]))
    print(_row("every order completed", storm["every_order_completed"]))
    print(_row("orders/s (first placed -> last shipped)", storm.get("orders_per_second")))
    print(_row("circuit breaker opened", storm["circuit_breaker_opened"]))
    print(f"  circuit opened per relay: {storm['circuit_opened']}")
    print(_row("max total backlog (queues + outboxes)", storm["max_total_backlog"]))
    print(f"  max backlog per queue/outbox: {storm['max_backlog']}")
    print("  peak RSS (VmHWM) per service, MiB:")
    for name, kib in result["peak_rss_kib"].items():
        print(f"    {name:<20}{kib / 1024:8.1f}")
    print(f"  RabbitMQ max RSS seen: {storm['rabbitmq_max_rss_kib_seen'] / 1024:.1f} MiB")
    print(f"  RabbitMQ: {result['rabbitmq_memory']}")
    _cpu_table(storm["cpu"])


FIGURES = (
    # label, how to read it from a router's summary, its ratio's key
    (
        "fleet CPU-s per 1,000 orders",
        ("fleet_cpu_seconds_per_1000_orders",),
        "fleet_cpu_per_1000_orders",
    ),
    (
        "intake CPU-s per 1,000 orders",
        ("intake_cpu_seconds_per_1000_orders",),
        "intake_cpu_per_1000_orders",
    ),
    ("HTTP answer p50 ms", ("http_response", "p50_ms"), "http_p50"),
    ("HTTP answer p99 ms", ("http_response", "p99_ms"), "http_p99"),
    (
        "OrderPlaced -> ShippingNotified p50 ms",
        ("order_placed_to_shipping_notified", "p50_ms"),
        "end_to_end_p50",
    ),
    (
        "OrderPlaced -> ShippingNotified p99 ms",
        ("order_placed_to_shipping_notified", "p99_ms"),
        "end_to_end_p99",
    ),
)
COST_ROWS = (
    "order_context",
    "provider_evaluation",
    "openfeature_client_evaluation",
    "decision_row_lookup_and_insert",
    "of_which_lookup",
    "of_which_insert",
    "decide_total",
)


def print_routing_summary(result: dict[str, Any]) -> None:
    """The comparison and the per-order evaluation cost, as a table."""
    comparison, cost = result["comparison"], result["evaluation_cost"]
    machine = result["machine"]
    flag, plain = comparison["routers"]["flag"], comparison["routers"]["events"]
    print("\n=== routing cost on the event path ===")
    print(
        f"  machine: {machine['nproc']} CPUs, load {machine['loadavg_at_start']} at start,"
        f" {result['loadavg_at_end']} at the end"
    )
    print(f"  {'':<42}{'flag (100% events)':>20}{'no routing':>12}{'ratio':>8}")
    completed = (f"{r['orders']} ({r['completed']})" for r in (flag, plain))
    print(f"  {'orders (completed)':<42}{next(completed):>20}{next(completed):>12}")
    for label, path, key in FIGURES:
        values = []
        for router in (flag, plain):
            value: Any = router
            for step in path:
                value = value.get(step)
            values.append(value)
        ratio = comparison["ratio_flag_to_no_routing"][key]
        mark = " ok" if comparison["within_5_percent"][key] else " >5%"
        print(f"  {label:<42}{values[0]!s:>20}{values[1]!s:>12}{ratio!s:>8}{mark}")
    print(f"  per order, in process, over {cost['orders']} orders:{'wall µs':>12}{'CPU µs':>10}")
    for key in COST_ROWS:
        print(f"    {key:<46}{cost[key]['wall_us']:>10}{cost[key]['cpu_us']:>10}")


def side_by_side(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per rate measured by both: the event path's and the Celery chain's p50/p99 and CPU, and
    the ratio of their p99s (event path / Celery).

    :param result: the results document with ``stepped`` and ``celery_chain``.
    """
    events = {s["offered_orders_per_second"]: s for s in result.get("stepped", {}).get("steps", [])}
    rows = []
    for chain in result.get("celery_chain", {}).get("steps", []):
        rate = chain["offered_orders_per_second"]
        if rate not in events:
            continue
        ours = events[rate]["order_placed_to_shipping_notified"]
        theirs = chain["chain_sent_to_notify_shipping_done"]
        rows.append(
            {
                "offered_orders_per_second": rate,
                "event_path_p50_p99_ms": [ours.get("p50_ms"), ours.get("p99_ms")],
                "celery_chain_p50_p99_ms": [theirs.get("p50_ms"), theirs.get("p99_ms")],
                "p99_ratio_event_path_to_celery": round(ours["p99_ms"] / theirs["p99_ms"], 2)
                if ours.get("p99_ms") and theirs.get("p99_ms")
                else None,
                "event_path_cpu_s_per_1000": events[rate]["cpu_seconds_per_1000_orders"],
                "celery_chain_cpu_s_per_1000": chain["cpu_seconds_per_1000_orders"],
                "machine_busy_percent": [
                    events[rate]["machine_busy_percent"],
                    chain["machine_busy_percent"],
                ],
            }
        )
    result["side_by_side"] = rows
    return rows


def print_side_by_side(result: dict[str, Any]) -> None:
    """The event path next to the Celery chain at the rates both ran.

    :param result: the results document.
    """
    for row in side_by_side(result):
        rate = row["offered_orders_per_second"]
        print(
            f"\nat {rate:g} orders/s offered: event path p50/p99 "
            f"{row['event_path_p50_p99_ms'][0]}/{row['event_path_p50_p99_ms'][1]} ms, "
            f"Celery chain {row['celery_chain_p50_p99_ms'][0]}/{row['celery_chain_p50_p99_ms'][1]}"
            f" ms, p99 ratio (event path / Celery) {row['p99_ratio_event_path_to_celery']}; "
            f"CPU-s per 1000 orders {row['event_path_cpu_s_per_1000']['all_processes']} vs "
            f"{row['celery_chain_cpu_s_per_1000']['all_processes']}; machine busy "
            f"{row['machine_busy_percent'][0]}% vs {row['machine_busy_percent'][1]}%"
        )
